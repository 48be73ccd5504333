package web

import "net/http"

// registerAdminIdentity adds the management site's pages about who may do
// what: users, clients, identity providers, trusted issuers, OAuth servers.
func (h *Handler) registerAdminIdentity(mux *http.ServeMux) {
}
