package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/flowdiagram"
	"github.com/flowgate/flowgate/internal/store"
)

// maxHistoryShown bounds the step records an instance page reads (for
// the diagram's path and the table); the API pages through the rest.
const maxHistoryShown = 2000

// maxChildrenShown bounds the child instances an instance page lists (a
// foreach may start many); the API lists them all.
const maxChildrenShown = 500

// instanceStatuses are the statuses the instance lists (the portal's and
// the management site's) filter by.
func instanceStatuses() []string {
	return []string{store.StatusRunning, store.StatusWaiting, store.StatusCompleted, store.StatusFailed, store.StatusCancelled}
}

// instanceListPage is what the instance list reads.
type instanceListPage struct {
	Instances []store.Instance
	// Workflow and Status are the filter as given; StatusError says
	// what is wrong with Status.
	Workflow, Status, StatusError string
	Statuses                      []string
	Next                          string
	// All says the list holds everyone's instances (an administrator).
	All bool
}

// instances is GET /instances: my instances, newest first (everyone's
// for an administrator), filtered by flow and status, a page at a time.
func (h *Handler) instances(w http.ResponseWriter, r *http.Request) {
	u := h.signedIn(w, r)
	if u == nil {
		return
	}
	q := r.URL.Query()
	page := instanceListPage{Workflow: q.Get("workflow"), Status: q.Get("status"), Statuses: instanceStatuses(), All: u.caller.Admin}
	v := u.view("Instances", &page)
	v.Nav = "instances"
	if page.Status != "" && !slices.Contains(page.Statuses, page.Status) {
		page.StatusError = fmt.Sprintf("%q is not an instance status", page.Status)
		h.render(w, http.StatusBadRequest, "instances", v)
		return
	}
	list, next, err := h.o.Engine.ListInstances(r.Context(), u.caller,
		store.InstanceFilter{Workflow: page.Workflow, Status: page.Status}, store.Page{Limit: store.DefaultLimit, Cursor: q.Get("cursor")})
	if errors.Is(err, store.ErrInvalidCursor) {
		h.statusPage(w, http.StatusBadRequest, u, "Bad page link", "This page link is not valid; start from the first page.")
		return
	}
	if err != nil {
		h.pageError(w, u, "listing instances", err)
		return
	}
	page.Instances, page.Next = list, pageAfter(r, next)
	h.render(w, http.StatusOK, "instances", v)
}

// instancePage is what an instance's page reads.
type instancePage struct {
	Instance            store.Instance
	Input, Vars, Output string
	Diagram             template.HTML
	// DiagramMissing says why there is no diagram (its version is gone).
	DiagramMissing string
	History        []historyRow
	// MoreHistory says the table stops at maxHistoryShown records.
	MoreHistory bool
	// MayCancel shows the cancel button: the instance runs or waits and
	// the user started it or administers (the engine decides again).
	MayCancel bool
	// Error is a refusal of the cancel.
	Error string
	// Parent is the instance whose step started this one, when there is
	// one; ParentFlow its flow, "" when the user may not see it (the page
	// then shows its id without a link). Part says which branch or item
	// of the parent's step this instance runs, "" for a flow step's.
	Parent, ParentFlow, Part string
	// Children are the instances this one's flow, parallel and foreach
	// steps started, oldest first, at most maxChildrenShown of
	// AllChildren.
	Children    []childRow
	AllChildren int
}

// childRow is one child instance as the page lists it: whoever may see
// an instance may see what it started.
type childRow struct {
	ID, Flow, Status string
	// Part says which branch or item of this instance's steps the child
	// runs (as partLabel), "" for a flow step's child.
	Part string
	// branch is the child's store.Instance.Branch.
	branch string
}

// Ended reports whether the instance has reached a final status.
func (p instancePage) Ended() bool { return p.Instance.Ended() }

// historyRow is one step record as the table shows it.
type historyRow struct {
	store.StepRecord
	Input, Output string
	Duration      string
	// Part says which branch or item a branch instance's record is of
	// ("branch legal of reviews", "item 3 of each-line"); "" for the
	// instance's own.
	Part string
}

// instance is GET /instances/{id}: the process flow monitor of one
// instance. Who may not see it gets the 404 page, as in the API.
func (h *Handler) instance(w http.ResponseWriter, r *http.Request) {
	u := h.signedIn(w, r)
	if u == nil {
		return
	}
	in, ok := h.visibleInstance(w, r, u)
	if !ok {
		return
	}
	page, err := h.newInstancePage(r, u, in)
	if err != nil {
		h.pageError(w, u, "reading an instance", err)
		return
	}
	h.renderInstance(w, http.StatusOK, u, page)
}

func (h *Handler) renderInstance(w http.ResponseWriter, status int, u *user, page instancePage) {
	v := u.view(fmt.Sprintf("%s · %s", page.Instance.Workflow, page.Instance.Status), page)
	v.Nav = "instances"
	h.render(w, status, "instance", v)
}

func (h *Handler) visibleInstance(w http.ResponseWriter, r *http.Request, u *user) (store.Instance, bool) {
	in, err := h.o.Portal.Engine.VisibleInstance(r.Context(), r.PathValue("id"), u.caller)
	if errors.Is(err, store.ErrNotFound) {
		h.notFound(w, u)
		return store.Instance{}, false
	}
	if err != nil {
		h.pageError(w, u, "reading an instance", err)
		return store.Instance{}, false
	}
	return in, true
}

func (h *Handler) newInstancePage(r *http.Request, u *user, in store.Instance) (instancePage, error) {
	page := instancePage{Instance: in, Input: prettyJSON(in.Input), Vars: prettyJSON(in.Vars), Output: prettyJSON(in.Output),
		MayCancel: !in.Ended() && (u.caller.Admin || in.StartedBy == u.caller.ID)}
	// The history as the API gives it: the instance's records merged with
	// those of the branch instances running its parallel and foreach
	// steps.
	var recs []engine.HistoryRecord
	cursor := ""
	for len(recs) < maxHistoryShown {
		p := store.Page{Limit: min(store.MaxLimit, maxHistoryShown-len(recs)), Cursor: cursor}
		got, next, err := h.o.Portal.Engine.History(r.Context(), in.ID, p)
		if err != nil {
			return instancePage{}, err
		}
		recs = append(recs, got...)
		if cursor = next; next == "" {
			break
		}
	}
	page.MoreHistory = cursor != ""
	if err := h.family(r, u, in, &page); err != nil {
		return instancePage{}, err
	}
	marks := flowdiagram.Marks{Completed: in.Status == store.StatusCompleted}
	// Each instance's records are a path of their own: the instance's,
	// and each branch's or item's, which run at the same time.
	branch := map[string]int{} // branch instance -> its path in marks.Branches
	for _, s := range recs {
		page.History = append(page.History, toHistoryRow(s))
		path := &marks.Path
		if s.InstanceID != in.ID {
			k, ok := branch[s.InstanceID]
			if !ok {
				k = len(marks.Branches)
				branch[s.InstanceID] = k
				marks.Branches = append(marks.Branches, nil)
			}
			path = &marks.Branches[k]
		}
		if p := *path; len(p) == 0 || p[len(p)-1] != s.StepID {
			*path = append(p, s.StepID)
		}
	}
	// The steps it is at: its own, and while branches run, theirs.
	cur, err := h.o.Portal.Engine.CurrentSteps(r.Context(), in)
	if err != nil {
		return instancePage{}, fmt.Errorf("current steps of %s: %w", in.ID, err)
	}
	for _, c := range cur {
		if !slices.Contains(marks.Current, c.Step) {
			marks.Current = append(marks.Current, c.Step)
		}
	}
	marks.Children = childOfStep(in.ID, recs, page.Children)
	if in.Status == store.StatusFailed && len(recs) > 0 && !page.MoreHistory {
		marks.Failed = failedAt(recs)
	}
	def, err := h.o.Portal.Engine.Definition(r.Context(), in.Workflow, in.Version)
	switch {
	case errors.Is(err, store.ErrNotFound):
		page.DiagramMissing = fmt.Sprintf("Version %d of %s is no longer stored, so there is no diagram.", in.Version, in.Workflow)
	case err != nil:
		return instancePage{}, err
	default:
		page.Diagram = flowdiagram.New(def, marks).SVG("instance")
	}
	// A branch or item instance runs part of the same flow as its parent.
	page.Part = partLabel(def, in.Branch)
	for i := range page.Children {
		page.Children[i].Part = partLabel(def, page.Children[i].branch)
	}
	return page, nil
}

// failedAt is the step an instance failed at, from its history: its last
// step when that failed or is a fail step (whose own record completed),
// else the last step whose record failed (a branch's, which failed the
// parallel or foreach step), else its last step. (Past the records read,
// the last step is not known: the caller asks only when it has them all.)
func failedAt(recs []engine.HistoryRecord) string {
	last := recs[len(recs)-1]
	if last.Status == store.StepFailed || last.Type == string(flow.TypeFail) {
		return last.StepID
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Status == store.StepFailed {
			return recs[i].StepID
		}
	}
	return last.StepID
}

// family fills in the page's parent and children.
func (h *Handler) family(r *http.Request, u *user, in store.Instance, page *instancePage) error {
	ctx := r.Context()
	if page.Parent = in.Parent; in.Parent != "" {
		p, err := h.o.Portal.Engine.VisibleInstance(ctx, in.Parent, u.caller)
		switch {
		case err == nil:
			page.ParentFlow = p.Workflow
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("parent %s of %s: %w", in.Parent, in.ID, err)
		}
	}
	kids, err := h.o.Portal.Engine.ChildInstances(ctx, in.ID)
	if err != nil {
		return fmt.Errorf("children of %s: %w", in.ID, err)
	}
	// Who may see an instance may see what it started.
	page.AllChildren = len(kids)
	kids = kids[:min(len(kids), maxChildrenShown)]
	page.Children = make([]childRow, len(kids))
	for i, k := range kids {
		page.Children[i] = childRow{ID: k.ID, Flow: k.Workflow, Status: k.Status, branch: k.Branch}
	}
	return nil
}

// partLabel says in words which part of a parallel or foreach step a
// branch or item instance runs: its Branch is STEP/NAME or STEP/INDEX.
func partLabel(def *flow.Definition, branch string) string {
	i := strings.LastIndex(branch, "/")
	if i < 0 {
		return ""
	}
	step, part := branch[:i], branch[i+1:]
	foreach := false
	if s, ok := stepOf(def, step); ok {
		foreach = s.Type == flow.TypeForeach
	} else if _, err := strconv.Atoi(part); err == nil {
		foreach = true
	}
	if foreach {
		return fmt.Sprintf("item %s of %s", part, step)
	}
	return fmt.Sprintf("branch %s of %s", part, step)
}

// stepOf finds a step of def, which may be nil (its version is gone).
func stepOf(def *flow.Definition, id string) (*flow.Step, bool) {
	if def == nil {
		return nil, false
	}
	return def.Step(id)
}

// childOfStep finds the child instance of each flow step the diagram
// links to: the instance a finished flow step's output names (a branch's
// flow step's too), and the one child still running when a single flow
// step of the instance id itself waits without one.
func childOfStep(id string, recs []engine.HistoryRecord, children []childRow) map[string]string {
	out := map[string]string{}
	claimed := map[string]bool{}
	var waiting []string
	for _, s := range recs {
		if s.Type != string(flow.TypeFlow) {
			continue
		}
		var o struct {
			Instance string `json:"instance"`
		}
		if json.Unmarshal(s.Output, &o) == nil && o.Instance != "" {
			out[s.StepID] = o.Instance
			claimed[o.Instance] = true
			waiting = slices.DeleteFunc(waiting, func(id string) bool { return id == s.StepID })
			continue
		}
		if s.Status == store.StepWaiting && s.InstanceID == id {
			waiting = append(waiting, s.StepID)
		}
	}
	var running []string
	for _, c := range children {
		if c.branch == "" && !claimed[c.ID] && (c.Status == store.StatusRunning || c.Status == store.StatusWaiting) {
			running = append(running, c.ID)
		}
	}
	if len(waiting) == 1 && len(running) == 1 {
		out[waiting[0]] = running[0]
	}
	return out
}

// toHistoryRow shows a step record as GET /api/v1/instances/{id}/history
// does: its input, output and error as stored, which the engine masked
// before writing them (engine/secrets.go), so the page shows no more than
// the API.
func toHistoryRow(s engine.HistoryRecord) historyRow {
	row := historyRow{StepRecord: s.StepRecord, Input: prettyJSON(s.Input), Output: prettyJSON(s.Output)}
	switch {
	case s.Fork == "":
	case s.Item >= 0:
		row.Part = fmt.Sprintf("item %d of %s", s.Item, s.Fork)
	default:
		row.Part = fmt.Sprintf("branch %s of %s", s.Branch, s.Fork)
	}
	if !s.EndedAt.IsZero() {
		row.Duration = max(s.EndedAt.Sub(s.StartedAt), 0).Round(time.Millisecond).String()
	}
	return row
}

// prettyJSON indents a stored JSON value for reading; "" for none.
func prettyJSON(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var buf bytes.Buffer
	if json.Indent(&buf, raw, "", "  ") != nil {
		return string(raw)
	}
	return buf.String()
}

// cancel is POST /instances/{id}/cancel: the engine's Cancel, the
// operation behind POST /api/v1/instances/{id}/cancel (audited there).
func (h *Handler) cancel(w http.ResponseWriter, r *http.Request) {
	u := h.postedForm(w, r)
	if u == nil {
		return
	}
	id := r.PathValue("id")
	in, err := h.o.Portal.Engine.Cancel(r.Context(), id, u.caller)
	if err == nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, "/instances/"+url.PathEscape(in.ID), http.StatusSeeOther)
		return
	}
	status := http.StatusConflict
	switch {
	case errors.Is(err, store.ErrNotFound):
		h.notFound(w, u)
		return
	case errors.Is(err, engine.ErrForbidden):
		status = http.StatusForbidden
	case errors.Is(err, engine.ErrEnded):
	case errors.Is(err, engine.ErrStopping):
		w.Header().Set("Retry-After", "5")
		status = http.StatusServiceUnavailable
	default:
		h.pageError(w, u, "cancelling an instance", err)
		return
	}
	in, ok := h.visibleInstance(w, r, u)
	if !ok {
		return
	}
	page, perr := h.newInstancePage(r, u, in)
	if perr != nil {
		h.pageError(w, u, "reading an instance", perr)
		return
	}
	page.Error = err.Error()
	h.renderInstance(w, status, u, page)
}
