package web

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/flowdiagram"
	"github.com/flowgate/flowgate/internal/store"
)

// maxVersionsShown bounds the versions a flow's page lists (newest
// first); each is one read.
const maxVersionsShown = 20

// nextRunsShown is how many upcoming times the flow page lists per
// schedule, as the API's workflow answer does.
const nextRunsShown = 5

// flows is GET /flows: the flows I may start, a page at a time.
func (h *Handler) flows(w http.ResponseWriter, r *http.Request) {
	u := h.signedIn(w, r)
	if u == nil {
		return
	}
	cursor := r.URL.Query().Get("cursor")
	defs, next, err := h.o.Engine.ListStartable(r.Context(), u.caller, store.Page{Limit: store.DefaultLimit, Cursor: cursor})
	if errors.Is(err, store.ErrInvalidCursor) {
		h.statusPage(w, http.StatusBadRequest, u, "Bad page link", "This page link is not valid; start from the first page.")
		return
	}
	if err != nil {
		h.pageError(w, u, "listing flows", err)
		return
	}
	v := u.view("Flows I may start", struct {
		Flows []*flow.Definition
		Next  string
	}{defs, pageAfter(r, next)})
	v.Nav = "flows"
	h.render(w, http.StatusOK, "flows", v)
}

// pageAfter is the link to the page after this one ("" when this is the
// last): the same query with the store's cursor.
func pageAfter(r *http.Request, cursor string) string {
	if cursor == "" {
		return ""
	}
	q := r.URL.Query()
	q.Set("cursor", cursor)
	return r.URL.Path + "?" + q.Encode()
}

// flowStartPage is what the flow page reads.
type flowStartPage struct {
	Flow     *flow.Definition
	Diagram  template.HTML
	Versions []flowVersion
	// NextRuns are the flow's schedules with their next starts; the
	// page shows them only when the flow has a schedule.
	NextRuns []engine.ScheduleInfo
	Fields   []formField
	// Error is a problem that is no field's.
	Error string
}

// flowVersion is one line of the versions list.
type flowVersion struct {
	Version int
	// File is the name of the file it was deployed from, without its
	// folder (a path on the deploying machine is nobody's business).
	File   string
	Latest bool
}

// flowDetail is GET /flows/{name}: the flow's diagram, versions and start
// form. A flow the user may not start is a 404 page, as in the API.
func (h *Handler) flowDetail(w http.ResponseWriter, r *http.Request) {
	u := h.signedIn(w, r)
	if u == nil {
		return
	}
	def, ok := h.startableFlow(w, r, u)
	if !ok {
		return
	}
	page, err := h.newFlowPage(r, def)
	if err != nil {
		h.pageError(w, u, "reading a flow's versions", err)
		return
	}
	h.renderFlow(w, http.StatusOK, u, page)
}

func (h *Handler) renderFlow(w http.ResponseWriter, status int, u *user, page flowStartPage) {
	v := u.view(page.Flow.Title, page)
	v.Nav = "flows"
	h.render(w, status, "flow", v)
}

// startableFlow reads the latest version of the path's flow, answering
// the 404 page when the user may not start it.
func (h *Handler) startableFlow(w http.ResponseWriter, r *http.Request, u *user) (*flow.Definition, bool) {
	def, err := h.o.Portal.Engine.StartableWorkflow(r.Context(), r.PathValue("name"), u.caller)
	if errors.Is(err, store.ErrNotFound) {
		h.notFound(w, u)
		return nil, false
	}
	if err != nil {
		h.pageError(w, u, "reading a flow", err)
		return nil, false
	}
	return def, true
}

func (h *Handler) newFlowPage(r *http.Request, def *flow.Definition) (flowStartPage, error) {
	page := flowStartPage{Flow: def, Diagram: flowdiagram.New(def, flowdiagram.Marks{}).SVG("flow"), Fields: inputFields(def),
		NextRuns: engine.ScheduleInfos(def, h.o.Now(), nextRunsShown)}
	for v := def.Version; v > 0 && v > def.Version-maxVersionsShown; v-- {
		fv := flowVersion{Version: v, File: path.Base(def.File), Latest: v == def.Version}
		if v != def.Version {
			old, err := h.o.Portal.Engine.Definition(r.Context(), def.Name, v)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return flowStartPage{}, err
			}
			fv.File = path.Base(old.File)
		}
		page.Versions = append(page.Versions, fv)
	}
	return page, nil
}

// inputFields is the start form: the flow's input fields in the order
// they are declared.
func inputFields(def *flow.Definition) []formField {
	out := make([]formField, 0, len(def.InputOrder))
	for _, name := range def.InputOrder {
		fl := def.Input[name]
		f := formField{FormField: engine.FormField{Type: fl.Type, Required: fl.Required, Description: fl.Description, Enum: fl.Enum, Default: fl.Default},
			Name: name, Label: label(name)}
		for _, e := range fl.Enum {
			f.Options = append(f.Options, enumText(e))
		}
		if fl.Default != nil {
			f.Value = enumText(fl.Default)
		}
		out = append(out, f)
	}
	return out
}

// start is POST /flows/{name}: the start form goes to the engine's
// StartInstance, the operation behind the API's
// POST /api/v1/workflows/{name}/instances. A refusal shows the form again
// with what was entered and each problem next to its field (400);
// success goes to the new instance's page.
func (h *Handler) start(w http.ResponseWriter, r *http.Request) {
	u := h.postedForm(w, r)
	if u == nil {
		return
	}
	def, ok := h.startableFlow(w, r, u)
	if !ok {
		return
	}
	page, err := h.newFlowPage(r, def)
	if err != nil {
		h.pageError(w, u, "reading a flow's versions", err)
		return
	}
	input := readFields(r, page.Fields)
	started, err := h.o.Portal.Engine.StartInstance(r.Context(), engine.StartRequest{Workflow: def.Name, Input: input, Caller: u.caller})
	if err == nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, "/instances/"+url.PathEscape(started.Instance.ID), http.StatusSeeOther)
		return
	}
	status := http.StatusBadRequest
	switch {
	case len(flow.InputErrors(err)) > 0:
		page.Error = markFields(page.Fields, "input.", flow.InputErrors(err))
	case errors.Is(err, engine.ErrForbidden), errors.Is(err, store.ErrNotFound):
		// The flow changed hands between the read and the start.
		h.notFound(w, u)
		return
	case errors.Is(err, engine.ErrVarsTooLarge), errors.Is(err, engine.ErrTooDeep):
		page.Error = err.Error()
	case errors.Is(err, engine.ErrStopping):
		w.Header().Set("Retry-After", "5")
		status, page.Error = http.StatusServiceUnavailable, "This server is shutting down; try again in a few seconds."
	default:
		h.pageError(w, u, "starting an instance", err)
		return
	}
	h.renderFlow(w, status, u, page)
}

// readFields turns the posted form into the JSON object the API would
// have been sent, keeping what was typed in fields for the page.
func readFields(r *http.Request, fields []formField) map[string]any {
	data := map[string]any{}
	for i, f := range fields {
		vals, present := r.PostForm[f.Name]
		posted := ""
		if present {
			posted = vals[0]
		}
		fields[i].Value = posted
		if v, ok := f.value(posted, present); ok {
			data[f.Name] = v
		}
	}
	return data
}

// markFields puts each input problem next to its field (the engine
// names them prefix+field) and returns the page's summary, which also
// holds the problems that are no field's.
func markFields(fields []formField, prefix string, ies []*flow.InputError) string {
	var other []string
	for _, ie := range ies {
		name := strings.TrimPrefix(ie.Field, prefix)
		found := false
		for i := range fields {
			if fields[i].Name == name {
				fields[i].Error = ie.Err.Error()
				found = true
			}
		}
		if !found {
			other = append(other, fmt.Sprintf("%s: %s", ie.Field, ie.Err))
		}
	}
	return strings.Join(append([]string{"Please correct the fields marked below."}, other...), " ")
}
