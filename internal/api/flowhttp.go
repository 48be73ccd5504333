package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/resource"
	"github.com/flowgate/flowgate/internal/store"
)

// This file holds what the Workflow REST API, invoke and flow deploys
// share: who the caller is to the engine, reading JSON object bodies, and
// turning engine errors into answers.

// callerOf is the request's principal as the engine sees it. The routes'
// scopes let the caller in; whether it is an administrator there is
// Principal.CanAdminister (the admin role and the admin scope).
func callerOf(r *http.Request) engine.Caller {
	p, ok := resource.PrincipalFrom(r.Context())
	if !ok {
		// Every engine route runs behind Authenticate; a missing
		// principal is a wiring mistake, and an anonymous caller may do
		// nothing.
		return engine.Caller{}
	}
	return engine.Caller{
		User:  flow.User{ID: p.ID, Kind: string(p.Kind), Subject: p.Subject, Issuer: p.IssuerName, Roles: p.Roles},
		Admin: p.CanAdminister(),
	}
}

// actor is who the changes a request makes are audited as: its
// principal ("user:alice", "client:ops", "entra:…").
func actor(r *http.Request) string { return callerOf(r).ID }

// readObject reads a JSON object body: start input, invoke input, task
// data. An empty body is {} (a flow without input needs none). It answers
// and returns false when the body is not one: 415 for another content
// type, 413 past maxBody, 400 saying what is wrong (with the byte offset
// of a syntax error).
func readObject(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			tooLarge(w)
			return nil, false
		}
		badRequest(w, "", "the body could not be read: "+err.Error())
		return nil, false
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return map[string]any{}, true
	}
	if !isJSONType(r.Header.Get("Content-Type")) {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type",
			"the body must be JSON (Content-Type: application/json)", "")
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var v any
	if err := dec.Decode(&v); err != nil {
		badRequest(w, "", "the body is not valid JSON: "+describeJSONError(err, data))
		return nil, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		badRequest(w, "", fmt.Sprintf("the body must hold one JSON object and nothing after it (more data at byte offset %d)", dec.InputOffset()))
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		badRequest(w, "", "the body must be a JSON object, not "+jsonKind(v))
		return nil, false
	}
	return m, true
}

func tooLarge(w http.ResponseWriter) {
	writeError(w, http.StatusRequestEntityTooLarge, "request_too_large",
		fmt.Sprintf("the body is larger than %d bytes", maxBody), "")
}

func isJSONType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// describeJSONError says what is wrong and where: the offset lets a caller
// find the mistake in a large body.
func describeJSONError(err error, data []byte) string {
	var synErr *json.SyntaxError
	switch {
	case errors.As(err, &synErr):
		return fmt.Sprintf("%s (at byte offset %d)", synErr.Error(), synErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Sprintf("it ends early (at byte offset %d)", len(data))
	}
	return err.Error()
}

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "an object"
}

// maxIdempotencyKey bounds an Idempotency-Key: keys are usually UUIDs,
// and the store keeps one row per key.
const maxIdempotencyKey = 255

// idempotencyKey reads the Idempotency-Key header; false when it answered
// a 400.
func idempotencyKey(w http.ResponseWriter, r *http.Request) (string, bool) {
	vals := r.Header.Values("Idempotency-Key")
	if len(vals) == 0 {
		return "", true
	}
	k := strings.TrimSpace(vals[0])
	bad := len(vals) > 1 || k == "" || len(k) > maxIdempotencyKey
	for i := 0; i < len(k) && !bad; i++ {
		bad = k[i] < 0x20 || k[i] > 0x7e
	}
	if bad {
		badRequest(w, "Idempotency-Key", fmt.Sprintf("Idempotency-Key must be one header of 1 to %d visible ASCII characters", maxIdempotencyKey))
		return "", false
	}
	return k, true
}

// problemJSON is one problem of start input, task data or a flow
// definition. Fields that do not apply are left out.
type problemJSON struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Flow    string `json:"flow,omitempty"`
	Step    string `json:"step,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// problemsBody is a 400 that lists every problem, so that a caller fixes
// them all at once rather than one per request.
type problemsBody struct {
	errorBody
	Problems []problemJSON `json:"problems"`
}

// leaves flattens joined errors, looking through wrappers, into the
// errors at the bottom of the tree.
func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	if u := errors.Unwrap(err); u != nil {
		if below := leaves(u); len(below) > 1 {
			return below
		}
	}
	return []error{err}
}

// inputProblems lists the *flow.InputError values in err; nil when it has
// none.
func inputProblems(err error) []problemJSON {
	var out []problemJSON
	for _, ie := range flow.InputErrors(err) {
		out = append(out, problemJSON{Field: ie.Field, Message: ie.Err.Error()})
	}
	return out
}

// writeProblems answers 400 with every problem; the description repeats
// them (texts, one per problem) for callers that only show
// error_description, and field names the first problem's field.
func writeProblems(w http.ResponseWriter, code string, ps []problemJSON, texts []string) {
	writeJSON(w, http.StatusBadRequest, problemsBody{
		errorBody: errorBody{Error: code, ErrorDescription: strings.Join(texts, "; "), Field: ps[0].Field},
		Problems:  ps,
	})
}

// retryAfterStopping is what a client is told to wait while this server
// shuts down: another server (or this one, restarted) answers by then.
const retryAfterStopping = 5

// engineError answers an engine error. what and key name the object the
// request was about, for 404s.
func (a *API) engineError(w http.ResponseWriter, r *http.Request, err error, what, key string) {
	if ps := inputProblems(err); len(ps) > 0 {
		texts := make([]string, len(ps))
		for i, p := range ps {
			texts[i] = p.Field + ": " + p.Message
		}
		writeProblems(w, "invalid_request", ps, texts)
		return
	}
	switch {
	case errors.Is(err, engine.ErrStopping):
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterStopping))
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable",
			"this server is shutting down; try again in a few seconds", "")
	case errors.Is(err, engine.ErrNoAction):
		writeError(w, http.StatusNotFound, "not_found", err.Error(), "action")
	case errors.Is(err, store.ErrNotFound):
		notFound(w, what, key)
	case errors.Is(err, engine.ErrForbidden):
		writeError(w, http.StatusForbidden, "forbidden", err.Error(), "")
	case errors.Is(err, store.ErrIdempotencyMismatch):
		writeError(w, http.StatusUnprocessableEntity, "idempotency_key_reused",
			"this Idempotency-Key was already used by this caller with a different request (another flow or other input); use a new key for a new request",
			"Idempotency-Key")
	case errors.Is(err, engine.ErrTaskClosed), errors.Is(err, engine.ErrEnded):
		writeError(w, http.StatusConflict, "conflict", err.Error(), "")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The caller hung up; nobody reads the answer, and the run goes
		// on regardless.
		a.log.DebugContext(r.Context(), "client went away", "method", r.Method, "path", r.URL.Path)
	default:
		a.serverError(w, r, err)
	}
}

// stamp formats a time of the flow objects: UTC RFC 3339 with the
// fraction, since steps are often milliseconds apart.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// optStamp is stamp, or null for a time not reached yet.
func optStamp(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := stamp(t)
	return &s
}

// optString is s, or null when empty.
func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// rawJSON passes a stored JSON document through; def when there is none.
// A document that is not JSON (it never should be) becomes def rather than
// breaking the whole answer.
func rawJSON(b []byte, def string) json.RawMessage {
	if len(b) == 0 || !json.Valid(b) {
		return json.RawMessage(def)
	}
	return json.RawMessage(b)
}

// absolute makes an API path a URL under the public URL, so that a client
// behind another host name can follow it.
func (a *API) absolute(path string) string {
	if a.publicURL == "" {
		return path
	}
	return strings.TrimRight(a.publicURL, "/") + path
}
