package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/duration"
	"github.com/flowgate/flowgate/internal/store"
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

// parseTime takes RFC 3339, or a duration meaning "that long ago" (30m,
// 24h, 7d), as `flowgate audit --since` does.
func parseTime(s string, now time.Time) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), true
	}
	if d, err := duration.Positive(s); err == nil {
		return now.Add(-d).UTC(), true
	}
	return time.Time{}, false
}

// listAudit serves GET /api/v1/admin/audit, newest first.
func (a *API) listAudit(w http.ResponseWriter, r *http.Request) {
	p, ok := page(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := store.AuditFilter{User: q.Get("user"), Event: q.Get("event"), Page: p}
	if f.Event != "" && !audit.IsEvent(f.Event) {
		// An unknown name would match nothing, and an empty list would
		// read as "it never happened".
		badRequest(w, "event", "event "+quote(f.Event)+" is not an audit event; the events are: "+strings.Join(audit.Events(), ", "))
		return
	}
	now := time.Now()
	for _, tf := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if s := q.Get(tf.name); s != "" {
			t, ok := parseTime(s, now)
			if !ok {
				badRequest(w, tf.name, tf.name+" must be an RFC 3339 time (2025-01-31T12:00:00Z) or a duration ago (24h, 7d)")
				return
			}
			*tf.dst = t
		}
	}
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
