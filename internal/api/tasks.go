package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
)

// taskJSON is a worklist item as the API shows it (docs/api.md), plus its
// step and status, and once someone acted, what they did.
type taskJSON struct {
	Serial     int64           `json:"serial"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Instance   string          `json:"instance"`
	Workflow   string          `json:"workflow"`
	Step       string          `json:"step"`
	Assignees  []string        `json:"assignees"`
	Actions    []string        `json:"actions"`
	Form       json.RawMessage `json:"form"`
	ConnectURL *string         `json:"connect_url"`
	CreatedAt  string          `json:"created_at"`
	Status     string          `json:"status"`
	Action     string          `json:"action,omitempty"`
	ActedBy    string          `json:"acted_by,omitempty"`
	ActedAt    *string         `json:"acted_at,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
	// DueAt is null when the task has no due time.
	DueAt     *string `json:"due_at"`
	Escalated bool    `json:"escalated"`
}

func toTaskJSON(t store.Task) taskJSON {
	out := taskJSON{
		Serial: t.Serial, Type: t.Type, Title: t.Title, Instance: t.InstanceID, Workflow: t.Workflow, Step: t.StepID,
		Assignees: nonNil(t.Assignees), Actions: nonNil(t.Actions), Form: rawJSON(t.Form, "{}"),
		ConnectURL: optString(t.ConnectURL), CreatedAt: stamp(t.CreatedAt), Status: t.Status,
		Action: t.Action, ActedBy: t.ActedBy, ActedAt: optStamp(t.ActedAt),
		DueAt: optStamp(t.DueAt), Escalated: t.Escalated,
	}
	if t.Status == store.TaskDone {
		out.Data = rawJSON(t.Data, "{}")
	}
	return out
}

func taskStatuses() []string { return []string{store.TaskOpen, store.TaskDone, store.TaskCancelled} }

// listTasks serves GET /api/v1/tasks: the caller's worklist (tasks naming
// the caller or one of its roles), open ones unless ?status= says
// otherwise; ?all=true lists everyone's, for administrators.
func (a *API) listTasks(w http.ResponseWriter, r *http.Request) {
	p, ok := page(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	status := q.Get("status")
	if status != "" && !slices.Contains(taskStatuses(), status) {
		badRequest(w, "status", fmt.Sprintf("status %q is not a task status (want one of %v)", status, taskStatuses()))
		return
	}
	all := false
	if s := q.Get("all"); s != "" {
		var err error
		if all, err = strconv.ParseBool(s); err != nil {
			badRequest(w, "all", fmt.Sprintf("all must be true or false, not %q", s))
			return
		}
	}
	tasks, next, err := a.engine.ListTasks(r.Context(), callerOf(r), all, status, p)
	if errors.Is(err, engine.ErrForbidden) {
		writeError(w, http.StatusForbidden, "forbidden", err.Error(), "all")
		return
	}
	if err != nil {
		a.listError(w, r, err)
		return
	}
	out := make([]taskJSON, len(tasks))
	for i, t := range tasks {
		out[i] = toTaskJSON(t)
	}
	writeJSON(w, http.StatusOK, newList(out, next))
}

// taskSerial reads {serial}; a serial that is not a number names no task,
// so it is a 404 like any other unknown one.
func taskSerial(w http.ResponseWriter, r *http.Request) (int64, bool) {
	s := r.PathValue("serial")
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		notFound(w, "task", s)
		return 0, false
	}
	return n, true
}

// getTask serves GET /api/v1/tasks/{serial}; only assignees and
// administrators see a task, others get 404.
func (a *API) getTask(w http.ResponseWriter, r *http.Request) {
	serial, ok := taskSerial(w, r)
	if !ok {
		return
	}
	t, err := a.engine.VisibleTask(r.Context(), serial, callerOf(r))
	if err != nil {
		a.engineError(w, r, err, "task", r.PathValue("serial"))
		return
	}
	writeJSON(w, http.StatusOK, toTaskJSON(t))
}

// actOnTask serves POST /api/v1/tasks/{serial}/actions/{action}: the body
// is a JSON object, the action's data: checked against the task's form and
// merged into the instance's vars when it has one, only the step's output
// when it has none. The instance runs on
// in the background; the answer is the closed task.
func (a *API) actOnTask(w http.ResponseWriter, r *http.Request) {
	serial, ok := taskSerial(w, r)
	if !ok {
		return
	}
	data, ok := readObject(w, r)
	if !ok {
		return
	}
	t, err := a.engine.Act(r.Context(), serial, r.PathValue("action"), data, callerOf(r))
	if errors.Is(err, engine.ErrVarsTooLarge) {
		writeError(w, http.StatusUnprocessableEntity, "vars_too_large", err.Error(), "")
		return
	}
	if err != nil {
		a.engineError(w, r, err, "task", r.PathValue("serial"))
		return
	}
	writeJSON(w, http.StatusOK, toTaskJSON(t))
}
