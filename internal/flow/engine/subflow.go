package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/store"
)

// A flow step starts a child instance and waits for it (docs/flows.md).
// Its durable points: the step's record is committed before the child is
// created, with the child's flow, version and input in the parent's state;
// the child is created under an Idempotency-Key made of the parent and
// that record's seq, so a parent that resumes after a crash finds the
// child it started instead of starting another; the parent then parks,
// unowned. The child's ending commit carries a wake for the parent, so the
// parent runs on exactly when, and however late, the child ends.

// childState is a flow step's child while the step waits.
type childState struct {
	Step    string          `json:"step"`
	Seq     int             `json:"seq"`
	Flow    string          `json:"flow"`
	Version int             `json:"version"`
	Input   json.RawMessage `json:"input"`
	// ID is set once the child exists.
	ID string `json:"id,omitempty"`
}

// parentState is, on a child, the flow step waiting for it.
type parentState struct {
	ID  string `json:"id"`
	Seq int    `json:"seq"`
}

// errTypeFlow is steps.<id>.error.type for a child that did not complete.
const errTypeFlow = "flow"

func (r *runner) runSubflow(ctx context.Context, step *flow.Step) error {
	cs := r.st.Child
	if cs == nil || cs.Step != step.ID || cs.Seq != r.inst.Seq {
		var err error
		if cs, err = r.prepareChild(ctx, step); cs == nil {
			return err
		}
	}
	if cs.ID == "" {
		def, err := r.e.Definition(ctx, cs.Flow, cs.Version)
		if err != nil {
			return fmt.Errorf("instance %s, step %q: flow %s version %d: %w", r.inst.ID, step.ID, cs.Flow, cs.Version, err)
		}
		var input map[string]any
		if err := json.Unmarshal(cs.Input, &input); err != nil {
			return fmt.Errorf("instance %s, step %q: child input: %w", r.inst.ID, step.ID, err)
		}
		caller := Caller{User: r.env.User}
		started, err := r.e.start(ctx, def, input, caller, r.inst.Depth+1, startGuards{
			// The parent as the principal: no caller can send this key.
			idem:   &store.Idempotency{Principal: "instance:" + r.inst.ID, Key: "flow-step." + strconv.Itoa(cs.Seq)},
			parent: &parentState{ID: r.inst.ID, Seq: cs.Seq},
		})
		if err != nil {
			if errors.Is(err, store.ErrIdempotencyMismatch) {
				return r.endSubflow(ctx, step, nil, fmt.Errorf("the child instance this step started earlier had other input: %w", err))
			}
			// Not the flow's fault (the store, a stopping engine): the run
			// stops and is taken over, and the same key finds the child.
			return fmt.Errorf("instance %s, step %q: start child: %w", r.inst.ID, step.ID, err)
		}
		cs.ID = started.Instance.ID
	}
	child, err := r.e.st.GetInstance(ctx, cs.ID)
	if err != nil {
		return fmt.Errorf("instance %s, step %q: child %s: %w", r.inst.ID, step.ID, cs.ID, err)
	}
	if child.Ended() {
		return r.endSubflow(ctx, step, &child, nil)
	}
	return r.parkForChildren(ctx, []string{cs.ID})
}

// parkForChildren commits the instance as waiting, unowned, for the
// children it started (a flow step's child, a fork's running branches):
// the ending commit of each carries its wake.
func (r *runner) parkForChildren(ctx context.Context, children []string) error {
	r.inst.Status = store.StatusWaiting
	r.inst.Owner = ""
	r.inst.LeaseUntil = time.Time{}
	if err := r.commit(ctx); err != nil {
		if errors.Is(err, errStop) {
			r.cancelOrphans(ctx, children)
		}
		return err
	}
	r.e.notify(r.inst.ID)
	// A child may have ended between the read and the park: its wake
	// found the parent still running. Look once more, after the park.
	for _, id := range children {
		if child, err := r.e.st.GetInstance(ctx, id); err == nil && child.Ended() {
			r.e.wakeLocally(r.inst.ID, r.inst.Seq, r.e.now())
			break
		}
	}
	return errStop
}

// prepareChild checks and records a flow step's first run and commits it;
// nil when the step failed (err is then what the run returns).
func (r *runner) prepareChild(ctx context.Context, step *flow.Step) (*childState, error) {
	start := r.e.now()
	sf := step.SubFlow
	raw, err := flow.EvaluateTree(sf.Input, &r.env)
	if err != nil {
		return nil, r.failStep(step, start, nil, err)
	}
	input, _ := raw.(map[string]any)
	def, err := r.e.Definition(ctx, sf.Flow, 0)
	if errors.Is(err, store.ErrNotFound) {
		return nil, r.failStep(step, start, nil, fmt.Errorf("no flow %q is deployed", sf.Flow))
	}
	if err != nil {
		return nil, fmt.Errorf("instance %s, step %q: flow %s: %w", r.inst.ID, step.ID, sf.Flow, err)
	}
	if caller := (Caller{User: r.env.User}); !caller.mayStart(def) {
		return nil, r.failStep(step, start, nil, fmt.Errorf("%w: %s may not start %s (its permissions.start)", ErrForbidden, caller.ID, def.Name))
	}
	if depth := r.inst.Depth + 1; depth > MaxDepth {
		return nil, r.failStep(step, start, nil, fmt.Errorf("%w: the child instance would be %d deep, more than the limit of %d", ErrTooDeep, depth, MaxDepth))
	}
	valid, err := def.ValidateInput(input)
	if err != nil {
		return nil, r.failStep(step, start, nil, fmt.Errorf("input for %s: %w", def.Name, err))
	}
	ij, err := json.Marshal(valid)
	if err != nil {
		return nil, r.failStep(step, start, nil, fmt.Errorf("input for %s: %w", def.Name, err))
	}
	r.record(step, store.StepWaiting, 1, start, map[string]any{"flow": def.Name, "version": def.Version, "input": valid})
	cs := &childState{Step: step.ID, Seq: r.inst.Seq, Flow: def.Name, Version: def.Version, Input: ij}
	r.st.Child = cs
	r.inst.Status = store.StatusRunning
	// A durable point before the child exists, so that a parent resumed
	// after a crash starts it under the same seq (and so the same key).
	if err := r.commit(ctx); err != nil {
		return nil, err
	}
	return cs, nil
}

// cancelOrphans cancels the children a run started when the run finds
// its instance cancelled (or taken over) at its next commit: the cancel
// may have looked for children before these existed.
func (r *runner) cancelOrphans(ctx context.Context, children []string) {
	for _, id := range children {
		r.cancelOrphan(ctx, id)
	}
}

// cancelOrphan cancels child when its parent has been cancelled, so that
// a cancel racing the child's start still cascades. A parent taken over
// by another server is left to it.
func (r *runner) cancelOrphan(ctx context.Context, child string) {
	p, err := r.e.st.GetInstance(ctx, r.inst.ID)
	if err != nil || p.Status != store.StatusCancelled {
		return
	}
	if _, err := r.e.cancelOne(ctx, child, p.StartedBy, func(store.Instance) bool { return true }); err != nil && !errors.Is(err, ErrEnded) {
		r.e.log.Error("flow engine: cancel the child of a cancelled instance", "instance", r.inst.ID, "child", child, "err", err)
	}
}

// endSubflow finishes the flow step with its ended child (or failErr when
// there is none): completed goes on, anything else fails the step.
func (r *runner) endSubflow(ctx context.Context, step *flow.Step, child *store.Instance, failErr error) error {
	r.st.Child = nil
	var out map[string]any
	if child != nil {
		var output any
		if len(child.Output) > 0 {
			_ = json.Unmarshal(child.Output, &output)
		}
		out = map[string]any{"instance": child.ID, "status": child.Status, "output": output}
		if child.Status != store.StatusCompleted {
			failErr = &stepFailure{kind: errTypeFlow, err: fmt.Errorf("child instance %s of %s ended %s: %s", child.ID, child.Workflow, child.Status, child.Error)}
		}
	}
	if failErr != nil {
		rec := r.parkedRecord(step, store.StepFailed, out)
		rec.Error = r.maskText(failErr.Error())
		r.pending = append(r.pending, rec)
		return r.stepFailed(ctx, step, failErr)
	}
	r.pending = append(r.pending, r.parkedRecord(step, store.StepCompleted, out))
	r.setOutput(step, out)
	r.inst.CurrentStep = r.def.After(step.ID)
	return nil
}

// wakeParent is set on a child's ending commit: the parent's flow step
// runs on once the child has ended.
func (r *runner) wakeParent() {
	if p := r.st.Parent; p != nil {
		r.wake = &store.Wake{InstanceID: p.ID, Seq: p.Seq, At: r.e.now()}
	}
}

// Children lists the ids of the instances that instance id's flow,
// parallel and foreach steps started, in the order they started. The
// caller has checked that it may see id; its children were started as the
// same principal.
func (e *Engine) Children(ctx context.Context, id string) ([]string, error) {
	kids, err := e.ChildInstances(ctx, id)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, k := range kids {
		ids = append(ids, k.ID)
	}
	return ids, nil
}

// ChildInstances reads the instances that instance id's flow, parallel
// and foreach steps started, in the order they started. The caller has
// checked that it may see id, and so them.
func (e *Engine) ChildInstances(ctx context.Context, id string) ([]store.Instance, error) {
	var kids []store.Instance
	cursor := ""
	for {
		page, next, err := e.st.ListInstances(ctx, store.InstanceFilter{Parent: id}, store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return nil, fmt.Errorf("children of %s: %w", id, err)
		}
		kids = append(kids, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	// Listed newest first; ids are UUIDv7, in start order.
	slices.Reverse(kids)
	return kids, nil
}
