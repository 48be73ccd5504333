package web

import "net/http"

// registerPortal adds the pages for everyone signed in.
func (h *Handler) registerPortal(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathHome, h.home)
	mux.HandleFunc("GET "+PathTasks, h.tasks)
	mux.HandleFunc("GET "+PathTask, h.task)
	mux.HandleFunc("POST "+PathTask, h.act)
}
