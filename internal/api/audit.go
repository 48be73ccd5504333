package api

import (
	"net/http"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
)

// auditJSON is one audit event.
type auditJSON struct {
	ID         int64  `json:"id"`
	Time       string `json:"time"`
	Event      string `json:"event"`
	User       string `json:"user"`
	Client     string `json:"client"`
	RemoteAddr string `json:"remote_addr"`
	UserAgent  string `json:"user_agent"`
	Outcome    string `json:"outcome"`
	Detail     string `json:"detail"`
}

// listAudit serves GET /api/v1/admin/audit, newest first.
func (a *API) listAudit(w http.ResponseWriter, r *http.Request) {
	p, ok := page(w, r)
	if !ok {
		return
	}
	// The same query as the management site's audit page.
	f, errs := audit.ParseQuery(r.URL.Query().Get, time.Now())
	if len(errs) > 0 {
		badRequest(w, errs[0].Field, errs[0].Message)
		return
	}
	f.Page = p
	events, next, err := a.st.ListAudit(r.Context(), f)
	if err != nil {
		a.listError(w, r, err)
		return
	}
	out := make([]auditJSON, len(events))
	for i, e := range events {
		out[i] = auditJSON{
			ID: e.ID, Time: e.Time.UTC().Format(time.RFC3339Nano), Event: e.Event, User: e.User, Client: e.Client,
			RemoteAddr: e.RemoteAddr, UserAgent: e.UserAgent, Outcome: e.Outcome, Detail: e.Detail,
		}
	}
	writeJSON(w, http.StatusOK, newList(out, next))
}
