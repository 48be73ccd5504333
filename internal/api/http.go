package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/store"
)

// maxBody bounds request bodies: admin objects, flow input, task data and
// flow definitions are small, and a bound keeps one request from holding
// memory.
const maxBody = 1 << 20

// errorBody is the JSON error of every Flowgate API, plus the field at
// fault when there is one.
type errorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
	Field            string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// Admin answers describe secrets' existence and may carry a new
	// client secret: nothing may cache them.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, description, field string) {
	writeJSON(w, status, errorBody{Error: code, ErrorDescription: description, Field: field})
}

func badRequest(w http.ResponseWriter, field, description string) {
	writeError(w, http.StatusBadRequest, "invalid_request", description, field)
}

func notFound(w http.ResponseWriter, what, key string) {
	writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("%s %q not found", what, key), "")
}

// serverError logs err and answers 500 without its text, which may name
// tables or hosts.
func (a *API) serverError(w http.ResponseWriter, r *http.Request, err error) {
	a.log.ErrorContext(r.Context(), "API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "server_error", "the request could not be completed; see the server log", "")
}

// storeError answers the store errors a handler expects (not found,
// conflict) and anything else as a 500.
func (a *API) storeError(w http.ResponseWriter, r *http.Request, err error, what, key string) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFound(w, what, key)
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("%s %q already exists", what, key), "")
	default:
		a.serverError(w, r, err)
	}
}

// fieldErrors answers the errors of a config validator: 400, every
// problem in the description, the first one's key as the field.
func fieldErrors(w http.ResponseWriter, err error) {
	var msgs []string
	field := ""
	for _, e := range unjoin(err) {
		var fe *config.FieldError
		if errors.As(e, &fe) {
			if field == "" {
				field = fe.Path
			}
			msgs = append(msgs, fe.Path+": "+fe.Err.Error())
			continue
		}
		msgs = append(msgs, e.Error())
	}
	badRequest(w, field, strings.Join(msgs, "; "))
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// decode reads a JSON object body into dst, answering and returning false
// when it cannot: 415 for another content type, 413 past maxBody, 400
// naming the field for unknown fields and wrong types.
func decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type",
			"the body must be JSON (Content-Type: application/json)", "")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		jsonError(w, err)
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		badRequest(w, "", "the body must hold one JSON object and nothing after it")
		return false
	}
	return true
}

// jsonError turns a decoding error into the answer that names its cause.
func jsonError(w http.ResponseWriter, err error) {
	var (
		maxErr  *http.MaxBytesError
		typeErr *json.UnmarshalTypeError
		synErr  *json.SyntaxError
	)
	switch {
	case errors.As(err, &maxErr):
		writeError(w, http.StatusRequestEntityTooLarge, "request_too_large",
			fmt.Sprintf("the body is larger than %d bytes", maxBody), "")
	case errors.Is(err, io.EOF):
		badRequest(w, "", "the body is empty; a JSON object is required")
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			badRequest(w, "", "the body must be a JSON object, not "+typeErr.Value)
			return
		}
		badRequest(w, typeErr.Field, fmt.Sprintf("%s must be %s, not %s", typeErr.Field, jsonType(typeErr.Type.String()), typeErr.Value))
	case errors.As(err, &synErr), errors.Is(err, io.ErrUnexpectedEOF):
		badRequest(w, "", "the body is not valid JSON: "+err.Error())
	default:
		// encoding/json has no type for unknown fields; its message is
		// `json: unknown field "x"`.
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			field, _ := strconv.Unquote(name)
			badRequest(w, field, "unknown field "+name)
			return
		}
		badRequest(w, "", "the body is not valid: "+err.Error())
	}
}

// jsonType names a Go type the way a JSON caller thinks of it.
func jsonType(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["):
		return "an object"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "a number"
	}
	return "of another type (" + goType + ")"
}

// page reads limit and cursor; false when it answered a 400.
func page(w http.ResponseWriter, r *http.Request) (store.Page, bool) {
	q := r.URL.Query()
	p := store.Page{Cursor: q.Get("cursor")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxLimit {
			badRequest(w, "limit", fmt.Sprintf("limit must be a whole number from 1 to %d", store.MaxLimit))
			return p, false
		}
		p.Limit = n
	}
	return p, true
}

// listResponse is the REST API's list shape (docs/api.md); NextCursor is null on the last
// page.
type listResponse[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

func newList[T any](items []T, next string) listResponse[T] {
	if items == nil {
		items = []T{}
	}
	l := listResponse[T]{Items: items}
	if next != "" {
		l.NextCursor = &next
	}
	return l
}

// writePage converts one page of store records to their JSON shape and
// writes it as a list.
func writePage[T, J any](w http.ResponseWriter, records []T, next string, toJSON func(T) J) {
	out := make([]J, len(records))
	for i, rec := range records {
		out[i] = toJSON(rec)
	}
	writeJSON(w, http.StatusOK, newList(out, next))
}

// listError answers a list failure: a bad cursor is the caller's fault.
func (a *API) listError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrInvalidCursor) {
		badRequest(w, "cursor", "cursor was not returned by a previous page of this list")
		return
	}
	a.serverError(w, r, err)
}

// timeString formats a stored time as every time in the API is: UTC, RFC 3339.
func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// nonNil keeps empty lists as [] in JSON.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// nonNilMap keeps empty maps as {} in JSON.
func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func isConflict(err error) bool { return errors.Is(err, store.ErrConflict) }
