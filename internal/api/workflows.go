package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
)

// workflowDetail is one flow as GET /api/v1/workflows/{name} shows it: the
// list shape plus the definition.
type workflowDetail struct {
	flow.Workflow
	Description string         `json:"description,omitempty"`
	Definition  map[string]any `json:"definition"`
	// Schedules are the flow's schedules with their next five times.
	Schedules []engine.ScheduleInfo `json:"schedules"`
}

// listWorkflows serves GET /api/v1/workflows: the latest version of every
// flow the caller may start (every flow for an administrator).
func (a *API) listWorkflows(w http.ResponseWriter, r *http.Request) {
	p, ok := page(w, r)
	if !ok {
		return
	}
	defs, next, err := a.engine.ListStartable(r.Context(), callerOf(r), p)
	if err != nil {
		a.listError(w, r, err)
		return
	}
	out := make([]flow.Workflow, len(defs))
	for i, d := range defs {
		out[i] = d.Summary()
	}
	writeJSON(w, http.StatusOK, newList(out, next))
}

// getWorkflow serves GET /api/v1/workflows/{name}; a flow the caller may
// not start is answered like one that does not exist.
func (a *API) getWorkflow(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	def, err := a.engine.StartableWorkflow(r.Context(), name, callerOf(r))
	if err != nil {
		a.engineError(w, r, err, "workflow", name)
		return
	}
	writeJSON(w, http.StatusOK, workflowDetail{Workflow: def.Summary(), Description: def.Description, Definition: def.Document,
		Schedules: engine.ScheduleInfos(def, time.Now(), 5)})
}

// instanceJSON is an instance as the API shows it (docs/api.md), plus its
// input and the step it is at.
type instanceJSON struct {
	ID          string          `json:"id"`
	Workflow    string          `json:"workflow"`
	Version     int             `json:"version"`
	Status      string          `json:"status"`
	StartedBy   string          `json:"started_by"`
	StartedAt   string          `json:"started_at"`
	EndedAt     *string         `json:"ended_at"`
	CurrentStep *string         `json:"current_step"`
	Input       json.RawMessage `json:"input"`
	Vars        json.RawMessage `json:"vars"`
	Output      json.RawMessage `json:"output"`
	Error       *string         `json:"error"`
	// Parent is the instance whose flow step started this one.
	Parent *string `json:"parent"`
	// Branch is set on an instance that runs a branch of its parent's
	// parallel step ("STEP/NAME") or an item of its foreach step
	// ("STEP/INDEX").
	Branch string `json:"branch,omitempty"`
}

// instanceDetailJSON is one instance with the instances its flow steps
// started.
type instanceDetailJSON struct {
	instanceJSON
	Children []string `json:"children"`
	// CurrentSteps are the steps the instance is at: its own and, while a
	// parallel or foreach step runs, those of its branches.
	CurrentSteps []currentStepJSON `json:"current_steps"`
}

type currentStepJSON struct {
	Step     string `json:"step"`
	Instance string `json:"instance"`
	Status   string `json:"status"`
	Branch   string `json:"branch,omitempty"`
	Item     *int   `json:"item,omitempty"`
}

// instanceDetail is an instance with its children and current steps.
func (a *API) instanceDetail(ctx context.Context, in store.Instance) (instanceDetailJSON, error) {
	kids, err := a.engine.Children(ctx, in.ID)
	if err != nil {
		return instanceDetailJSON{}, err
	}
	if kids == nil {
		kids = []string{}
	}
	cur, err := a.engine.CurrentSteps(ctx, in)
	if err != nil {
		return instanceDetailJSON{}, err
	}
	d := instanceDetailJSON{instanceJSON: toInstanceJSON(in), Children: kids, CurrentSteps: []currentStepJSON{}}
	for _, c := range cur {
		j := currentStepJSON{Step: c.Step, Instance: c.Instance, Status: c.Status, Branch: c.Branch}
		if c.Item >= 0 {
			j.Item = &c.Item
		}
		d.CurrentSteps = append(d.CurrentSteps, j)
	}
	return d, nil
}

func toInstanceJSON(in store.Instance) instanceJSON {
	return instanceJSON{
		ID: in.ID, Workflow: in.Workflow, Version: in.Version, Status: in.Status, StartedBy: in.StartedBy,
		StartedAt: stamp(in.StartedAt), EndedAt: optStamp(in.EndedAt), CurrentStep: optString(in.CurrentStep),
		Input: rawJSON(in.Input, "{}"), Vars: rawJSON(in.Vars, "{}"), Output: rawJSON(in.Output, "null"),
		Error: optString(in.Error), Parent: optString(in.Parent), Branch: in.Branch,
	}
}

func instancePath(id string) string { return "/api/v1/instances/" + url.PathEscape(id) }

// startInstance serves POST /api/v1/workflows/{name}/instances. With an
// Idempotency-Key already used for the same flow and input, it answers 200
// with the instance the first request started, and says so in
// Idempotent-Replayed.
func (a *API) startInstance(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
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
	started, err := a.engine.StartInstance(r.Context(), engine.StartRequest{Workflow: name, Input: input, Caller: c, IdempotencyKey: key, CallerDepth: depth})
	if err != nil {
		a.startError(w, r, err, c, name)
		return
	}
	w.Header().Set("Location", instancePath(started.Instance.ID))
	status := http.StatusCreated
	if started.Existing {
		w.Header().Set("Idempotent-Replayed", "true")
		status = http.StatusOK
	}
	writeJSON(w, status, toInstanceJSON(started.Instance))
}

// startError answers a failed start or invoke; a refusal says why in
// words a caller can act on.
func (a *API) startError(w http.ResponseWriter, r *http.Request, err error, c engine.Caller, name string) {
	if errors.Is(err, engine.ErrForbidden) {
		writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf(
			"%s may not start workflow %q: its permissions.start names neither the caller nor one of its roles (a token scope is a grant, not a right)",
			c.ID, name), "")
		return
	}
	if errors.Is(err, engine.ErrTooDeep) {
		writeError(w, http.StatusUnprocessableEntity, "depth_limit_exceeded", err.Error(), engine.DepthHeader)
		return
	}
	a.engineError(w, r, err, "workflow", name)
}

// instanceStatuses are the statuses ?status= accepts.
func instanceStatuses() []string {
	return []string{store.StatusRunning, store.StatusWaiting, store.StatusCompleted, store.StatusFailed, store.StatusCancelled}
}

// listInstances serves GET /api/v1/instances: the caller's own instances,
// newest first; every instance for an administrator.
func (a *API) listInstances(w http.ResponseWriter, r *http.Request) {
	p, ok := page(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := store.InstanceFilter{Workflow: q.Get("workflow"), Status: q.Get("status")}
	if f.Status != "" && !slices.Contains(instanceStatuses(), f.Status) {
		badRequest(w, "status", fmt.Sprintf("status %q is not an instance status (want one of %v)", f.Status, instanceStatuses()))
		return
	}
	list, next, err := a.engine.ListInstances(r.Context(), callerOf(r), f, p)
	if err != nil {
		a.listError(w, r, err)
		return
	}
	writePage(w, list, next, toInstanceJSON)
}

// getInstance serves GET /api/v1/instances/{id}.
func (a *API) getInstance(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	in, err := a.engine.VisibleInstance(r.Context(), id, callerOf(r))
	if err != nil {
		a.engineError(w, r, err, "instance", id)
		return
	}
	d, err := a.instanceDetail(r.Context(), in)
	if err != nil {
		a.engineError(w, r, err, "instance", id)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// historyJSON is one step record of the process flow monitor. Input and
// output were masked before they were stored.
type historyJSON struct {
	Seq        int             `json:"seq"`
	Step       string          `json:"step"`
	Type       string          `json:"type"`
	Status     string          `json:"status"`
	Attempt    int             `json:"attempt"`
	StartedAt  string          `json:"started_at"`
	EndedAt    *string         `json:"ended_at"`
	DurationMS *int64          `json:"duration_ms"`
	Input      json.RawMessage `json:"input"`
	Output     json.RawMessage `json:"output"`
	Error      *string         `json:"error"`
	// Branch, Item and Instance mark a record of a branch instance: the
	// parallel branch or foreach item of step Fork it belongs to.
	Fork     string `json:"fork,omitempty"`
	Branch   string `json:"branch,omitempty"`
	Item     *int   `json:"item,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// toBranchHistoryJSON adds to a record where in the instance's run it is.
func toBranchHistoryJSON(id string) func(engine.HistoryRecord) historyJSON {
	return func(r engine.HistoryRecord) historyJSON {
		h := toHistoryJSON(r.StepRecord)
		if r.InstanceID != id {
			h.Fork, h.Branch, h.Instance = r.Fork, r.Branch, r.InstanceID
			if r.Item >= 0 {
				item := r.Item
				h.Item = &item
			}
		}
		return h
	}
}

func toHistoryJSON(s store.StepRecord) historyJSON {
	h := historyJSON{
		Seq: s.Seq, Step: s.StepID, Type: s.Type, Status: s.Status, Attempt: s.Attempt,
		StartedAt: stamp(s.StartedAt), EndedAt: optStamp(s.EndedAt),
		Input: rawJSON(s.Input, "null"), Output: rawJSON(s.Output, "null"), Error: optString(s.Error),
	}
	if !s.EndedAt.IsZero() {
		d := max(s.EndedAt.Sub(s.StartedAt).Milliseconds(), 0)
		h.DurationMS = &d
	}
	return h
}

// instanceHistory serves GET /api/v1/instances/{id}/history: the step
// records in the order the steps started.
func (a *API) instanceHistory(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p, ok := page(w, r)
	if !ok {
		return
	}
	if _, err := a.engine.VisibleInstance(r.Context(), id, callerOf(r)); err != nil {
		a.engineError(w, r, err, "instance", id)
		return
	}
	recs, next, err := a.engine.History(r.Context(), id, p)
	if err != nil {
		a.listError(w, r, err)
		return
	}
	writePage(w, recs, next, toBranchHistoryJSON(id))
}

// cancelInstance serves POST /api/v1/instances/{id}/cancel. Who cannot
// see the instance gets 404; who can see it but neither started it nor
// is an administrator (an assignee) gets 403.
func (a *API) cancelInstance(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	in, err := a.engine.Cancel(r.Context(), id, callerOf(r))
	if err != nil {
		a.engineError(w, r, err, "instance", id)
		return
	}
	d, err := a.instanceDetail(r.Context(), in)
	if err != nil {
		a.engineError(w, r, err, "instance", id)
		return
	}
	writeJSON(w, http.StatusOK, d)
}
