package api

import (
	"errors"
	"io"
	"net/http"

	"github.com/flowgate/flowgate/internal/flow/engine"
)

// webhook serves POST /hooks/{flow}/{name}: no bearer token, the
// signature is the credential (docs/flows.md). The body is read whole, up
// to engine.MaxWebhookBody, before anything else, so a larger one is 413
// and starts nothing. 202 with the instance; 401 for a bad, missing or
// replayed signature.
func (a *API) webhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, engine.MaxWebhookBody))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			writeError(w, http.StatusRequestEntityTooLarge, "request_too_large", "the body is larger than 1 MiB", "")
			return
		}
		badRequest(w, "", "the body could not be read: "+err.Error())
		return
	}
	name := r.PathValue("flow")
	st, err := a.engine.Webhook(r.Context(), engine.WebhookRequest{Workflow: name, Hook: r.PathValue("name"), Header: r.Header, Body: body})
	switch {
	case errors.Is(err, engine.ErrBadSignature):
		writeError(w, http.StatusUnauthorized, "invalid_signature", err.Error(), "")
	case errors.Is(err, engine.ErrHookSecret):
		// The sender should try again once the secret is set; which
		// secret is for the log, not for whoever sends.
		a.log.WarnContext(r.Context(), "webhook refused", "workflow", name, "hook", r.PathValue("name"), "err", err)
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "this webhook's secret is not set on the server", "")
	case errors.Is(err, engine.ErrBadPayload):
		badRequest(w, "", err.Error())
	case err != nil:
		a.engineError(w, r, err, "webhook", name+"/"+r.PathValue("name"))
	default:
		in := st.Instance
		w.Header().Set("Location", instancePath(in.ID))
		writeJSON(w, http.StatusAccepted, invokeAccepted{Instance: toInstanceJSON(in), URL: a.absolute(instancePath(in.ID))})
	}
}
