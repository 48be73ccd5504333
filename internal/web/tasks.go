package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
)

// Paths of the work portal.
const (
	PathHome  = "/{$}"
	PathTasks = "/tasks"
	PathTask  = "/tasks/{serial}"
)

// homeItems is how many of each list the home page shows.
const homeItems = 10

// tasksPerPage is how many tasks a page of the worklist shows.
const tasksPerPage = 100

// maxFormBytes bounds a posted task form.
const maxFormBytes = 1 << 20

// home is GET /: my open tasks, my recent instances, flows I may start.
func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	u := h.signedIn(w, r)
	if u == nil {
		return
	}
	ctx := r.Context()
	p := store.Page{Limit: homeItems}
	tasks, _, err := h.o.Engine.ListTasks(ctx, u.caller, false, store.TaskOpen, p)
	if err != nil {
		h.pageError(w, u, "listing tasks", err)
		return
	}
	// The user's own instances, also for an administrator (whose
	// caller would list everyone's).
	own := u.caller
	own.Admin = false
	insts, _, err := h.o.Engine.ListInstances(ctx, own, store.InstanceFilter{}, p)
	if err != nil {
		h.pageError(w, u, "listing instances", err)
		return
	}
	flows, _, err := h.o.Engine.ListStartable(ctx, u.caller, p)
	if err != nil {
		h.pageError(w, u, "listing flows", err)
		return
	}
	v := u.view("Home", struct {
		Tasks     []taskRow
		Instances []store.Instance
		Flows     []*flow.Definition
	}{taskRows(tasks, h.o.Now()), insts, flows})
	v.Nav = "home"
	h.render(w, http.StatusOK, "home", v)
}

// tasks is GET /tasks: the open tasks naming me or one of my roles.
func (h *Handler) tasks(w http.ResponseWriter, r *http.Request) {
	u := h.signedIn(w, r)
	if u == nil {
		return
	}
	tasks, next, err := h.o.Engine.ListTasks(r.Context(), u.caller, false, store.TaskOpen,
		store.Page{Limit: tasksPerPage, Cursor: r.URL.Query().Get("cursor")})
	if errors.Is(err, store.ErrInvalidCursor) {
		h.statusPage(w, http.StatusBadRequest, u, "Bad page link", "This page link is not valid; start from the first page.")
		return
	}
	if err != nil {
		h.pageError(w, u, "listing tasks", err)
		return
	}
	v := u.view("My tasks", struct {
		Tasks []taskRow
		Next  string
	}{taskRows(tasks, h.o.Now()), pageAfter(r, next)})
	v.Nav = "tasks"
	// The confirmation of the action just taken (see act): only a
	// number is read, so no link can make the page say something else.
	if n, err := strconv.ParseInt(r.URL.Query().Get("done"), 10, 64); err == nil && n > 0 {
		v.Notice = fmt.Sprintf("Task %d is done; the flow goes on.", n)
	}
	h.render(w, http.StatusOK, "tasks", v)
}

// taskRow is a task of the worklist with whether it is overdue.
type taskRow struct {
	store.Task
	Overdue bool
}

// taskRows marks the tasks overdue at now.
func taskRows(tasks []store.Task, now time.Time) []taskRow {
	rows := make([]taskRow, len(tasks))
	for i, t := range tasks {
		rows[i] = taskRow{Task: t, Overdue: overdue(t, now)}
	}
	return rows
}

// overdue reports that an open task's due time has passed.
func overdue(t store.Task, now time.Time) bool {
	return t.Status == store.TaskOpen && !t.DueAt.IsZero() && t.DueAt.Before(now)
}

// taskPage is what the task page reads.
type taskPage struct {
	Task store.Task
	// Overdue is set when the task is open past its due time.
	Overdue bool
	Fields  []formField
	// Error is a problem that is no field's.
	Error string
}

// formField is one input of a task's form, with what was entered and
// what is wrong with it.
type formField struct {
	engine.FormField
	Name, Label, Value, Error string
	Options                   []string
}

// InputType is the HTML input type for the field's type.
func (f formField) InputType() string {
	if f.Type == "number" || f.Type == "integer" {
		return "number"
	}
	return "text"
}

// Step lets a number field take fractions; integers keep the default.
func (f formField) Step() string {
	if f.Type == "number" {
		return "any"
	}
	return ""
}

// Multiline is for fields whose value is JSON (objects and arrays).
func (f formField) Multiline() bool { return f.Type == "object" || f.Type == "array" }

// formFields reads a task's form description, keeping its field order.
func formFields(raw []byte) ([]formField, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("task form: %w", err)
	}
	var out []formField
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("task form: %w", err)
		}
		name, _ := tok.(string)
		var f formField
		if err := dec.Decode(&f.FormField); err != nil {
			return nil, fmt.Errorf("task form field %q: %w", name, err)
		}
		f.Name, f.Label = name, label(name)
		for _, e := range f.Enum {
			f.Options = append(f.Options, enumText(e))
		}
		if f.Default != nil {
			f.Value = enumText(f.Default)
		}
		out = append(out, f)
	}
	return out, nil
}

// label turns a field name (cost_center) into words (Cost center).
func label(name string) string {
	s := strings.ReplaceAll(name, "_", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// enumText is how a value is written in the form.
func enumText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// value turns what the browser posted into the JSON value the engine
// checks, as the API would receive it. Text that is not of the field's
// type is passed on as text, so the engine's message says what is wrong,
// the same message the API gives. Absent or empty is no value at all.
func (f formField) value(posted string, present bool) (any, bool) {
	if f.Type == "boolean" {
		return present && posted == "true", true
	}
	if posted == "" {
		return nil, false
	}
	for _, e := range f.Enum {
		if enumText(e) == posted {
			return e, true
		}
	}
	switch f.Type {
	case "number", "integer":
		if n, err := strconv.ParseFloat(strings.TrimSpace(posted), 64); err == nil {
			return n, true
		}
	case "object", "array":
		var v any
		if json.Unmarshal([]byte(posted), &v) == nil {
			return v, true
		}
	}
	return posted, true
}

// task is GET /tasks/{serial}: the task and its form.
func (h *Handler) task(w http.ResponseWriter, r *http.Request) {
	u := h.signedIn(w, r)
	if u == nil {
		return
	}
	t, fields, ok := h.visibleTask(w, r, u)
	if !ok {
		return
	}
	h.render(w, http.StatusOK, "task", u.view(t.Title, taskPage{Task: t, Fields: fields, Overdue: overdue(t, h.o.Now())}))
}

// visibleTask reads the task of the path with its form, answering 404
// when it is not the user's to see.
func (h *Handler) visibleTask(w http.ResponseWriter, r *http.Request, u *user) (store.Task, []formField, bool) {
	serial, err := strconv.ParseInt(r.PathValue("serial"), 10, 64)
	if err != nil || serial < 1 {
		h.notFound(w, u)
		return store.Task{}, nil, false
	}
	t, err := h.o.Engine.VisibleTask(r.Context(), serial, u.caller)
	if errors.Is(err, store.ErrNotFound) {
		h.notFound(w, u)
		return store.Task{}, nil, false
	}
	if err != nil {
		h.pageError(w, u, "reading a task", err)
		return store.Task{}, nil, false
	}
	fields, err := formFields(t.Form)
	if err != nil {
		h.pageError(w, u, "reading a task's form", err)
		return store.Task{}, nil, false
	}
	return t, fields, true
}

// act is POST /tasks/{serial}: the action pressed, with the form's
// fields, goes to the engine's Act, the operation behind the API's
// POST /api/v1/tasks/{serial}/actions/{action}. A refusal shows the form
// again with what was entered and each problem next to its field.
func (h *Handler) act(w http.ResponseWriter, r *http.Request) {
	u := h.postedForm(w, r)
	if u == nil {
		return
	}
	t, fields, ok := h.visibleTask(w, r, u)
	if !ok {
		return
	}
	data := readFields(r, fields)
	action := r.PostForm.Get("action")
	_, err := h.o.Engine.Act(r.Context(), t.Serial, action, data, u.caller)
	if err == nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, fmt.Sprintf("%s?done=%d", PathTasks, t.Serial), http.StatusSeeOther)
		return
	}
	page := taskPage{Task: t, Fields: fields, Overdue: overdue(t, h.o.Now())}
	status := http.StatusBadRequest
	if ies := flow.InputErrors(err); len(ies) > 0 {
		page.Error = markFields(page.Fields, "data.", ies)
	} else {
		switch {
		case errors.Is(err, engine.ErrNoAction), errors.Is(err, engine.ErrVarsTooLarge):
			page.Error = err.Error()
		case errors.Is(err, engine.ErrTaskClosed), errors.Is(err, engine.ErrEnded):
			status, page.Error = http.StatusConflict, err.Error()
		case errors.Is(err, store.ErrNotFound):
			h.notFound(w, u)
			return
		case errors.Is(err, engine.ErrStopping):
			w.Header().Set("Retry-After", "5")
			status, page.Error = http.StatusServiceUnavailable, "This server is shutting down; try again in a few seconds."
		default:
			h.pageError(w, u, "acting on a task", err)
			return
		}
	}
	h.render(w, status, "task", u.view(t.Title, page))
}

// pageError logs a failure of ours and says so, without its detail.
func (h *Handler) pageError(w http.ResponseWriter, u *user, doing string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	h.o.Logger.Error("page: "+doing, "err", err)
	h.statusPage(w, http.StatusInternalServerError, u, "Something went wrong", "Something went wrong on our side; try again later.")
}
