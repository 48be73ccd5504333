package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/principal"
	"github.com/flowgate/flowgate/internal/store"
)

// Who may see and act on what (docs/api.md): a flow is for those its
// permissions.start names; an instance is its starter's; an assignee of
// one of its tasks may read it (who decides needs its context) and act on
// that task; an administrator may do all of it. Whoever may not see
// something is told it does not exist, so that names and ids do not
// reveal what exists.

// Caller is who asks the engine to do something: the principal and
// whether it is an administrator (which the API decides: the admin role
// and the admin scope).
type Caller struct {
	flow.User
	Admin bool
}

// assigneeKeys are the task assignee entries that name the caller.
func (c Caller) assigneeKeys() []string { return principal.AssigneeKeys(c.ID, c.Roles) }

// started reports whether the caller started in.
func (c Caller) started(in store.Instance) bool { return c.ID != "" && in.StartedBy == c.ID }

// mayCancel reports whether the caller may cancel in: its starter or an
// administrator, not an assignee.
func (c Caller) mayCancel(in store.Instance) bool { return c.Admin || c.started(in) }

// assigned reports whether t names the caller (itself or one of its
// roles) among its assignees.
func (c Caller) assigned(t store.Task) bool {
	return slices.ContainsFunc(c.assigneeKeys(), func(k string) bool { return slices.Contains(t.Assignees, k) })
}

// mayStart reports whether the caller may start def: named in its
// permissions.start (itself or by a role), or an administrator.
func (c Caller) mayStart(def *flow.Definition) bool {
	return c.Admin || def.CanStart(c.ID, c.Roles)
}

// StartableWorkflow reads the latest version of a flow the caller may
// start. Another flow is store.ErrNotFound: the list does not show it
// either, and its definition may say more than its name.
func (e *Engine) StartableWorkflow(ctx context.Context, name string, c Caller) (*flow.Definition, error) {
	def, err := e.Definition(ctx, name, 0)
	if err != nil {
		return nil, err
	}
	if !c.mayStart(def) {
		return nil, fmt.Errorf("flow %s: %w", name, store.ErrNotFound)
	}
	return def, nil
}

// maxListRounds bounds the store pages one ListStartable reads while it
// looks for flows the caller may start. A caller who may start few of
// many flows then gets a short page with a cursor rather than a request
// that reads the whole table.
const maxListRounds = 20

// ListStartable pages through the latest version of every flow the
// caller may start (every flow for an administrator). The page may be
// short while the cursor says there is more.
func (e *Engine) ListStartable(ctx context.Context, c Caller, p store.Page) ([]*flow.Definition, string, error) {
	limit := p.Normalize().Limit
	out := make([]*flow.Definition, 0, limit)
	cursor := p.Cursor
	// Each round asks only for what is still missing, so the page never
	// holds more than limit flows and the store's own cursor stays right.
	for range maxListRounds {
		defs, next, err := e.listFlows(ctx, store.Page{Limit: limit - len(out), Cursor: cursor})
		if err != nil {
			return nil, "", err
		}
		for _, d := range defs {
			if c.mayStart(d) {
				out = append(out, d)
			}
		}
		cursor = next
		if next == "" || len(out) == limit {
			break
		}
	}
	return out, cursor, nil
}

// VisibleInstance reads an instance the caller may see: its starter, an
// administrator, an assignee of one of its tasks (open or not), its
// branches' and items' tasks included, or whoever may see the instance
// that started it. Others get store.ErrNotFound.
func (e *Engine) VisibleInstance(ctx context.Context, id string, c Caller) (store.Instance, error) {
	in, err := e.st.GetInstance(ctx, id)
	if err != nil {
		return store.Instance{}, err
	}
	if c.Admin || c.started(in) {
		return in, nil
	}
	if c.ID != "" {
		ok, err := e.assignedIn(ctx, c, id)
		if err != nil {
			return store.Instance{}, err
		}
		if ok {
			return in, nil
		}
		// The tasks of a parallel's branches and a foreach's items are
		// the instance's too.
		branches, err := e.branchInstances(ctx, id)
		if err != nil {
			return store.Instance{}, err
		}
		for _, b := range branches {
			ok, err := e.assignedIn(ctx, c, b.ID)
			if err != nil {
				return store.Instance{}, err
			}
			if ok {
				return in, nil
			}
		}
		// What an instance started is part of it: who may see the
		// parent may see its children.
		if in.Parent != "" {
			if _, err := e.VisibleInstance(ctx, in.Parent, c); err == nil {
				return in, nil
			} else if !errors.Is(err, store.ErrNotFound) {
				return store.Instance{}, err
			}
		}
	}
	return store.Instance{}, fmt.Errorf("instance %s: %w", id, store.ErrNotFound)
}

// assignedIn tells whether the caller is an assignee of a task of
// instance id, open or not.
func (e *Engine) assignedIn(ctx context.Context, c Caller, id string) (bool, error) {
	keys := c.assigneeKeys()
	for _, status := range []string{store.TaskOpen, store.TaskDone, store.TaskCancelled} {
		ts, _, err := e.st.ListTasks(ctx, store.TaskFilter{Assignees: keys, InstanceID: id, Status: status}, store.Page{Limit: 1})
		if err != nil {
			return false, err
		}
		if len(ts) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// ListInstances pages through the instances the caller started, newest
// first; an administrator's list holds every instance. f's StartedBy is
// set from the caller.
func (e *Engine) ListInstances(ctx context.Context, c Caller, f store.InstanceFilter, p store.Page) ([]store.Instance, string, error) {
	f.StartedBy = ""
	if !c.Admin {
		if c.ID == "" {
			return nil, "", nil
		}
		f.StartedBy = c.ID
	}
	return e.st.ListInstances(ctx, f, p)
}

// VisibleTask reads a task the caller may see: an assignee, or an
// administrator. Others get store.ErrNotFound.
func (e *Engine) VisibleTask(ctx context.Context, serial int64, c Caller) (store.Task, error) {
	t, err := e.st.GetTask(ctx, serial)
	if err != nil {
		return store.Task{}, err
	}
	if c.Admin || c.assigned(t) {
		return t, nil
	}
	return store.Task{}, fmt.Errorf("task %d: %w", serial, store.ErrNotFound)
}

// ListTasks pages through the caller's worklist, or with all through
// every task, which only an administrator may (ErrForbidden).
func (e *Engine) ListTasks(ctx context.Context, c Caller, all bool, status string, p store.Page) ([]store.Task, string, error) {
	f := store.TaskFilter{Assignees: c.assigneeKeys(), Status: status}
	if all {
		if !c.Admin {
			return nil, "", fmt.Errorf("%w: %s may not list every task (all=true): that takes role admin and a token with scope admin", ErrForbidden, c.ID)
		}
		f = store.TaskFilter{All: true, Status: status}
	}
	return e.st.ListTasks(ctx, f, p)
}
