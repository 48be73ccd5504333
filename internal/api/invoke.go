package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
)

// invokeAccepted is the 202 of an invoke that has not ended: the instance
// and where to follow it.
type invokeAccepted struct {
	Instance instanceJSON `json:"instance"`
	URL      string       `json:"url"`
	// ConnectURL is where the invoker signs in when the flow waits for
	// them at an oauth_user_login step (docs/flows.md).
	ConnectURL string `json:"connect_url,omitempty"`
}

// flowEnded is the 502 of an invoke whose instance failed or was
// cancelled: the flow, not the caller, is at fault, and the caller learns
// which instance and step to look at.
type flowEnded struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	Instance         string `json:"instance"`
	Step             string `json:"step"`
}

// invoke serves POST /api/v1/flows/{name}/invoke: it starts the flow with
// the body as input and answers with what its return step says, once the
// instance has ended within the engine's invoke wait. ?async=true, a run
// that outlasts the wait, or one waiting for a person answers 202 with
// the instance instead.
func (a *API) invoke(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	async := false
	if s := r.URL.Query().Get("async"); s != "" {
		var err error
		if async, err = strconv.ParseBool(s); err != nil {
			badRequest(w, "async", fmt.Sprintf("async must be true or false, not %q", s))
			return
		}
	}
	key, ok := idempotencyKey(w, r)
	if !ok {
		return
	}
	depth, ok := callerDepth(w, r)
	if !ok {
		return
	}
	input, ok := readObject(w, r)
	if !ok {
		return
	}
	c := callerOf(r)
	res, err := a.engine.Invoke(r.Context(), engine.StartRequest{Workflow: name, Input: input, Caller: c, IdempotencyKey: key, CallerDepth: depth}, async)
	if err != nil {
		a.startError(w, r, err, c, name)
		return
	}
	if res.Existing {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	in := res.Instance
	switch {
	// async answers 202 even when the instance ended at once (a flow of
	// steps without outside effects): a caller that asked for the
	// instance gets the instance, whatever the flow did.
	case async || !res.Done:
		w.Header().Set("Location", instancePath(in.ID))
		writeJSON(w, http.StatusAccepted, invokeAccepted{Instance: toInstanceJSON(in), URL: a.absolute(instancePath(in.ID)), ConnectURL: res.ConnectURL})
	case in.Status == store.StatusCompleted && res.Response != nil:
		a.writeFlowResponse(w, r, in, res.Response)
	default:
		a.writeFlowEnded(w, in)
	}
}

// writeFlowEnded answers a failed or cancelled instance. The instance's
// error may hold what a step received from another system, so the
// description carries it only when show_detailed_errors is on.
func (a *API) writeFlowEnded(w http.ResponseWriter, in store.Instance) {
	code, what := "flow_failed", "failed"
	if in.Status == store.StatusCancelled {
		code, what = "flow_cancelled", "was cancelled"
	}
	desc := fmt.Sprintf("workflow %q %s at step %q; instance %s has the details", in.Workflow, what, in.CurrentStep, in.ID)
	if a.detailed && in.Error != "" {
		desc = fmt.Sprintf("workflow %q %s: %s", in.Workflow, what, in.Error)
	}
	writeJSON(w, http.StatusBadGateway, flowEnded{Error: code, ErrorDescription: desc, Instance: in.ID, Step: in.CurrentStep})
}

// framingHeaders are not the flow's to set: the server frames the body it
// writes itself.
func framingHeaders() []string {
	return []string{"Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade", "Trailer", "Te"}
}

// writeFlowResponse answers with the return step's status, headers and
// body. A flow may set any header but those that frame the message.
func (a *API) writeFlowResponse(w http.ResponseWriter, r *http.Request, in store.Instance, resp *engine.Response) {
	if resp.Status < 200 || resp.Status > 599 {
		// 1xx is not a final answer; net/http would send it and then a
		// 200 the flow never chose.
		writeJSON(w, http.StatusBadGateway, flowEnded{Error: "flow_failed",
			ErrorDescription: fmt.Sprintf("workflow %q returned status %d, which cannot end an HTTP exchange", in.Workflow, resp.Status),
			Instance:         in.ID, Step: ""})
		return
	}
	var body []byte
	if resp.Body != nil {
		var err error
		if body, err = json.Marshal(resp.Body); err != nil {
			a.serverError(w, r, fmt.Errorf("instance %s: return body: %w", in.ID, err))
			return
		}
	}
	h := w.Header()
	h.Set("X-Flowgate-Instance", in.ID)
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	for k, v := range resp.Headers {
		skip := false
		for _, f := range framingHeaders() {
			if strings.EqualFold(k, f) {
				skip = true
			}
		}
		if !skip {
			h.Set(k, v)
		}
	}
	w.WriteHeader(resp.Status)
	if body != nil {
		// 204 and 304 take no body; the writer refuses it, which is right.
		_, _ = w.Write(append(body, '\n'))
	}
}
