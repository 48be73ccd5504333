package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/store"
)

// StartRequest asks for a new instance.
type StartRequest struct {
	Workflow string
	// Input is the start input as decoded from JSON.
	Input  map[string]any
	Caller Caller
	// IdempotencyKey, when set, makes a repeated request return the
	// instance the first one started.
	IdempotencyKey string
	// CallerDepth is the depth of the instance whose http step sent the
	// request (DepthHeader); 0 when a person or a client sent it. The new
	// instance is one deeper, and a start deeper than MaxDepth is refused.
	CallerDepth int
}

// Started is the result of StartInstance.
type Started struct {
	Instance store.Instance
	// Existing is set when the Idempotency-Key had already started it.
	Existing bool
	done     chan struct{}
}

// StartInstance checks the caller's permission and the input, creates the
// instance and runs it on this server. It returns once the instance is
// recorded: for a flow of steps without effects outside it, that is when
// it has ended.
//
// Errors: store.ErrNotFound (no such flow), ErrForbidden, a *flow.InputError
// joined list (bad input), store.ErrIdempotencyMismatch, ErrTooDeep.
func (e *Engine) StartInstance(ctx context.Context, req StartRequest) (Started, error) {
	if e.stopping.Load() {
		return Started{}, ErrStopping
	}
	depth := max(req.CallerDepth, 0) + 1
	if depth > MaxDepth {
		// Before anything is read or written: a flow starting itself
		// through the API stops here, whatever the flow.
		return Started{}, fmt.Errorf("%w: starting %s would make the instance %d deep (started by instances through %s), more than the limit of %d",
			ErrTooDeep, req.Workflow, depth, DepthHeader, MaxDepth)
	}
	def, err := e.Definition(ctx, req.Workflow, 0)
	if err != nil {
		return Started{}, err
	}
	if !req.Caller.mayStart(def) {
		return Started{}, fmt.Errorf("%w: %s may not start %s", ErrForbidden, req.Caller.ID, def.Name)
	}
	var idem *store.Idempotency
	if req.IdempotencyKey != "" {
		idem = &store.Idempotency{Principal: req.Caller.ID, Key: req.IdempotencyKey}
	}
	input, err := def.ValidateInput(req.Input)
	if err != nil {
		return Started{}, err
	}
	return e.start(ctx, def, input, req.Caller, depth, startGuards{idem: idem})
}

// startGuards are what a start records in the instance's own transaction
// so that it happens once: an Idempotency-Key, a schedule's claim of its
// time, a webhook signature.
type startGuards struct {
	idem   *store.Idempotency
	claim  *store.ScheduleClaim
	replay *store.ReplayGuard
	// parent is the flow step starting the instance as its child.
	parent *parentState
	// fork makes it a branch instance of the parent's parallel or
	// foreach step.
	fork *forkStart
}

// errGuardTaken: the schedule time or the webhook signature of a start was
// already taken; nothing was written.
var errGuardTaken = errors.New("already started")

// start creates the instance with its guards and runs it on this server;
// the caller has checked who may start it and validated the input.
func (e *Engine) start(ctx context.Context, def *flow.Definition, input map[string]any, caller Caller, depth int, g startGuards) (Started, error) {
	r, err := e.newRunner(def, input, caller)
	if err != nil {
		return Started{}, err
	}
	r.inst.Depth = depth
	r.traceParent = trace.SpanContextFromContext(ctx)
	if g.parent != nil {
		r.inst.Parent = g.parent.ID
		r.st.Parent = g.parent
	}
	if g.fork != nil {
		r.becomeBranch(g.fork)
	}
	if g.idem != nil {
		g.idem.RequestHash = requestHash(def.Name, r.inst.Input)
		r.idem = g.idem
	}
	r.claim, r.replay = g.claim, g.replay
	r.firstCommit = make(chan struct{})
	done := make(chan struct{})
	r.startTracked(done)
	select {
	case <-r.firstCommit:
	case <-ctx.Done():
		// The run goes on; the caller is gone.
		return Started{}, ctx.Err()
	}
	if r.existing != "" {
		inst, err := e.st.GetInstance(ctx, r.existing)
		if err != nil {
			return Started{}, err
		}
		return Started{Instance: inst, Existing: true}, nil
	}
	if r.firstErr != nil {
		if errors.Is(r.firstErr, store.ErrIdempotencyMismatch) {
			return Started{}, r.firstErr
		}
		if r.guardTaken {
			return Started{}, fmt.Errorf("start %s: %w", def.Name, errGuardTaken)
		}
		return Started{}, fmt.Errorf("start %s: %w", def.Name, r.firstErr)
	}
	return Started{Instance: r.snapshot, done: done}, nil
}

// startTracked runs r in the background and closes done when the run
// stops.
func (r *runner) startTracked(done chan struct{}) {
	r.e.runs.Add(1)
	go func() {
		defer r.e.runs.Done()
		defer close(done)
		err := r.advance(r.e.ctx)
		r.signalFirst(err)
		if err != nil && !errors.Is(err, errStop) && r.existing == "" && !r.guardTaken && !errors.Is(err, store.ErrIdempotencyMismatch) {
			r.e.log.Error("flow engine: run stopped", "instance", r.inst.ID, "workflow", r.inst.Workflow, "err", r.maskText(err.Error()))
		}
	}()
}

func requestHash(workflow string, input []byte) string {
	h := sha256.New()
	h.Write([]byte(workflow))
	h.Write([]byte{0})
	h.Write(input)
	return hex.EncodeToString(h.Sum(nil))
}

func (e *Engine) newRunner(def *flow.Definition, input map[string]any, c Caller) (*runner, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("instance id: %w", err)
	}
	s := starter{ID: c.ID, Kind: c.Kind, Subject: c.Subject, Issuer: c.Issuer, Roles: c.Roles}
	if s.Roles == nil {
		s.Roles = []string{}
	}
	sj, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	ij, err := json.Marshal(input)
	if err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	now := e.now()
	first := ""
	if len(def.Steps) > 0 {
		first = def.Steps[0].ID
	}
	r := &runner{e: e, def: def, inst: store.Instance{
		ID: id.String(), Workflow: def.Name, Version: def.Version, Status: store.StatusRunning,
		StartedBy: c.ID, Starter: sj, Input: ij, CurrentStep: first,
		Owner: e.owner, LeaseUntil: now.Add(e.lease), StartedAt: now, UpdatedAt: now,
	}}
	// Expressions see the input as stored, so a resumed run and a first
	// run compute the same values.
	var stored map[string]any
	if err := json.Unmarshal(ij, &stored); err != nil {
		return nil, err
	}
	r.initEnv(stored, nil, s)
	return r, nil
}

// InvokeResult is what Invoke returns.
type InvokeResult struct {
	Instance store.Instance
	// Done is set when the instance ended within the wait.
	Done bool
	// Response is the return step's answer when the instance completed.
	Response *Response
	// Existing is set when the Idempotency-Key had already started it.
	Existing bool
	// ConnectURL is set when the instance waits for the invoker to sign
	// in at an OAuth server (oauth_user_login): where to send them.
	ConnectURL string
}

// Invoke starts an instance and waits, up to the engine's invoke wait,
// for it to end. It answers early when the instance waits for a person (a
// task), since no one is going to act within an HTTP request; and at once
// when async.
func (e *Engine) Invoke(ctx context.Context, req StartRequest, async bool) (InvokeResult, error) {
	started, err := e.StartInstance(ctx, req)
	if err != nil {
		return InvokeResult{}, err
	}
	inst := started.Instance
	if async || inst.Ended() {
		return e.invokeResult(inst, started.Existing), nil
	}
	deadline := time.NewTimer(e.wait)
	defer deadline.Stop()
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	for {
		if inst.Status == store.StatusWaiting {
			if t, ok := e.openTask(ctx, inst); ok {
				res := e.invokeResult(inst, started.Existing)
				if t.Type == store.TaskTypeConnect && slices.Contains(t.Assignees, req.Caller.ID) {
					res.ConnectURL = t.ConnectURL
				}
				return res, nil
			}
		}
		ch, cancel := e.waiter(inst.ID)
		select {
		case <-ch:
		case <-poll.C:
			// Another server may have resumed it.
		case <-started.done:
			started.done = nil
		case <-deadline.C:
			cancel()
			cur, err := e.st.GetInstance(context.WithoutCancel(ctx), inst.ID)
			if err == nil {
				inst = cur
			}
			return e.invokeResult(inst, started.Existing), nil
		case <-ctx.Done():
			cancel()
			return InvokeResult{}, ctx.Err()
		}
		cancel()
		cur, err := e.st.GetInstance(ctx, inst.ID)
		if err != nil {
			return InvokeResult{}, err
		}
		inst = cur
		if inst.Ended() {
			return e.invokeResult(inst, started.Existing), nil
		}
	}
}

// openTask returns the open task an instance waits on, if any: a person
// is then needed, and no one is going to act within an HTTP request.
// While a parallel or foreach step waits, the tasks are its branches'.
func (e *Engine) openTask(ctx context.Context, inst store.Instance) (store.Task, bool) {
	tasks, _, err := e.st.ListTasks(ctx, store.TaskFilter{All: true, InstanceID: inst.ID, Status: store.TaskOpen}, store.Page{Limit: 1})
	if err == nil && len(tasks) > 0 {
		return tasks[0], true
	}
	if err != nil || inst.CurrentStep == "" {
		return store.Task{}, false
	}
	if def, err := e.Definition(ctx, inst.Workflow, inst.Version); err != nil {
		return store.Task{}, false
	} else if s, ok := def.Step(inst.CurrentStep); !ok || (s.Parallel == nil && s.Foreach == nil) {
		return store.Task{}, false
	}
	branches, err := e.branchInstances(ctx, inst.ID)
	if err != nil {
		return store.Task{}, false
	}
	for _, b := range branches {
		if b.Status != store.StatusWaiting {
			continue
		}
		tasks, _, err := e.st.ListTasks(ctx, store.TaskFilter{All: true, InstanceID: b.ID, Status: store.TaskOpen}, store.Page{Limit: 1})
		if err == nil && len(tasks) > 0 {
			return tasks[0], true
		}
	}
	return store.Task{}, false
}

func (e *Engine) invokeResult(inst store.Instance, existing bool) InvokeResult {
	res := InvokeResult{Instance: inst, Done: inst.Ended(), Existing: existing}
	if inst.Status == store.StatusCompleted {
		resp := &Response{Status: 200}
		out := inst.Output
		// A masked output has its answer as the flow gave it in the state.
		var st state
		if bytes.Contains(out, []byte(mask)) && len(inst.State) > 0 && json.Unmarshal(inst.State, &st) == nil && st.Response != nil {
			out = st.Response
		}
		if len(out) > 0 {
			if err := json.Unmarshal(out, resp); err != nil {
				resp = &Response{Status: 200}
			}
		}
		res.Response = resp
	}
	return res
}

// Act performs action on a task for the caller: it validates the form
// data, records the decision, merges the data into the instance's vars
// (when the task has a form; without one the data is only the step's
// output) and runs the instance on from the action's next step on this server.
//
// Errors: store.ErrNotFound (no such task, or not the caller's),
// ErrNoAction, ErrTaskClosed, a form validation error, ErrVarsTooLarge.
func (e *Engine) Act(ctx context.Context, serial int64, action string, data map[string]any, c Caller) (store.Task, error) {
	if e.stopping.Load() {
		return store.Task{}, ErrStopping
	}
	t, err := e.VisibleTask(ctx, serial, c)
	if err != nil {
		return store.Task{}, err
	}
	if !slices.Contains(t.Actions, action) {
		return store.Task{}, fmt.Errorf("%w: task %d has no action %q (its actions: %v)", ErrNoAction, serial, action, t.Actions)
	}
	if t.Status != store.TaskOpen {
		return store.Task{}, fmt.Errorf("%w: task %d was %s", ErrTaskClosed, serial, closedWord(t))
	}
	inst, err := e.st.GetInstance(ctx, t.InstanceID)
	if err != nil {
		return store.Task{}, err
	}
	r, err := e.loadRunner(ctx, inst)
	if err != nil {
		return store.Task{}, err
	}
	step, ok := r.def.Step(t.StepID)
	if !ok || step.Task == nil {
		return store.Task{}, fmt.Errorf("task %d: step %q is not a task in %s version %d", serial, t.StepID, r.def.Name, r.def.Version)
	}
	clean, toVars, err := step.Task.ActionData(data)
	if err != nil {
		return store.Task{}, err
	}
	next, err := r.def.AfterAction(step.ID, action)
	if err != nil {
		return store.Task{}, err
	}
	if inst.Status != store.StatusWaiting || inst.Seq != t.Seq {
		return store.Task{}, fmt.Errorf("%w: its instance has moved on (%s)", ErrTaskClosed, inst.Status)
	}
	now := e.now()
	dataJSON, err := json.Marshal(clean)
	if err != nil {
		return store.Task{}, err
	}
	if toVars {
		for k, v := range clean {
			r.env.Vars[k] = v
		}
		// Refused rather than failing the step: the person acting can
		// send less, and nothing has been written yet.
		if err := r.checkVars(); err != nil {
			return store.Task{}, fmt.Errorf("task %d: %w", serial, err)
		}
	}
	out := map[string]any{"action": action, "by": c.ID, "data": clean}
	r.pending = append(r.pending, r.parkedRecord(step, store.StepCompleted, out))
	r.setOutput(step, out)
	r.act = &store.TaskAct{Serial: serial, Action: action, ActedBy: c.ID, Data: dataJSON, At: now}
	r.inst.CurrentStep = next
	r.inst.Status = store.StatusRunning
	r.inst.Owner = e.owner
	// The row is unowned while it waits: claim it with this commit.
	if err := e.commitClaim(ctx, r); err != nil {
		return store.Task{}, err
	}
	r.start()
	t.Status, t.Action, t.ActedBy, t.Data, t.ActedAt = store.TaskDone, action, c.ID, dataJSON, now
	audit.Change{Event: audit.TaskAction, By: c.ID,
		Detail: fmt.Sprintf("task %d %s: instance %s step %s", serial, action, t.InstanceID, t.StepID)}.Record(ctx, e.audit)
	return t, nil
}

func closedWord(t store.Task) string {
	if t.Status == store.TaskDone {
		return "already done (" + t.Action + " by " + t.ActedBy + ")"
	}
	return t.Status
}

// commitClaim writes a runner's first commit on an unowned (waiting)
// instance: fenced on nobody owning it, so of two servers acting at once
// one wins and the other gets ErrTaskClosed.
func (e *Engine) commitClaim(ctx context.Context, r *runner) error {
	now := e.now()
	r.inst.UpdatedAt = now
	r.inst.LeaseUntil = now.Add(e.lease)
	if err := r.encodeRow(); err != nil {
		return err
	}
	err := e.st.CommitInstance(ctx, store.InstanceCommit{Instance: r.inst, ExpectOwner: "", Steps: r.pending, Act: r.act})
	switch {
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrLeaseLost):
		return fmt.Errorf("%w: someone acted on it first", ErrTaskClosed)
	case err != nil:
		return err
	}
	r.pending, r.act = nil, nil
	return nil
}

// Cancel ends an instance as cancelled: its starter or an administrator
// may. A running step is recorded as cancelled; its server notices at its
// next commit and stops.
//
// Errors: store.ErrNotFound (no such instance, or one the caller may not
// see), ErrForbidden (the caller sees it as an assignee), ErrEnded.
func (e *Engine) Cancel(ctx context.Context, id string, c Caller) (store.Instance, error) {
	if _, err := e.VisibleInstance(ctx, id, c); err != nil {
		return store.Instance{}, err
	}
	inst, err := e.cancelOne(ctx, id, c.ID, c.mayCancel)
	if err != nil {
		return inst, err
	}
	e.cancelChildren(ctx, id, c.ID)
	return e.st.GetInstance(ctx, id)
}

// cancelOne ends instance id as cancelled by by, when may allows it.
func (e *Engine) cancelOne(ctx context.Context, id, by string, may func(store.Instance) bool) (store.Instance, error) {
	for range 5 {
		inst, err := e.st.GetInstance(ctx, id)
		if err != nil {
			return store.Instance{}, err
		}
		if !may(inst) {
			audit.Change{Event: audit.InstanceCancelled, By: by, Outcome: audit.OutcomeFailure,
				Detail: "instance " + id + ": not its starter nor an administrator"}.Record(ctx, e.audit)
			return store.Instance{}, fmt.Errorf("%w: only the instance's starter or an administrator may cancel it", ErrForbidden)
		}
		if inst.Ended() {
			return inst, fmt.Errorf("%w: instance %s is %s", ErrEnded, id, inst.Status)
		}
		owner := inst.Owner
		now := e.now()
		var steps []store.StepRecord
		if inst.Seq > 0 {
			last, err := e.lastRecord(ctx, inst)
			if err == nil && last.EndedAt.IsZero() {
				last.Status = store.StepCancelled
				last.EndedAt = now
				last.Error = "cancelled by " + by
				steps = append(steps, last)
			}
		}
		c := store.InstanceCommit{Instance: inst, ExpectOwner: owner, Steps: steps, CancelTasks: true}
		if inst.Parent != "" {
			// A child's end, cancelled too, is what its parent's flow step
			// waits for.
			var st state
			if json.Unmarshal(inst.State, &st) == nil && st.Parent != nil {
				c.Wake = &store.Wake{InstanceID: st.Parent.ID, Seq: st.Parent.Seq, At: now}
			}
		}
		c.Instance.Status = store.StatusCancelled
		c.Instance.Error = "cancelled by " + by
		c.Instance.Owner = ""
		c.Instance.LeaseUntil = time.Time{}
		c.Instance.EndedAt = now
		c.Instance.UpdatedAt = now
		err = e.st.CommitInstance(ctx, c)
		if errors.Is(err, store.ErrLeaseLost) {
			continue // it moved meanwhile; read again
		}
		if err != nil {
			return store.Instance{}, err
		}
		for _, rec := range steps {
			e.metrics.StepEnded(rec.Type, rec.Status, rec.EndedAt.Sub(rec.StartedAt))
		}
		e.metrics.InstanceFinished(inst.Workflow, inst.Status)
		e.notify(id)
		if c.Wake != nil {
			e.wakeLocally(c.Wake.InstanceID, c.Wake.Seq, now)
		}
		detail := "instance " + id + " (" + inst.Workflow + ")"
		if inst.Parent != "" {
			detail += ", child of " + inst.Parent
		}
		audit.Change{Event: audit.InstanceCancelled, By: by, Detail: detail}.Record(ctx, e.audit)
		return c.Instance, nil
	}
	return store.Instance{}, fmt.Errorf("cancel instance %s: it kept changing; try again", id)
}

// cancelChildren cancels the instances id's flow steps started that have
// not ended, and theirs. Whoever may cancel the parent may cancel what it
// started. A child that ends meanwhile is left as it ended; a failure is
// logged, and the child's flow step, cancelled with its parent, no longer
// waits for it.
func (e *Engine) cancelChildren(ctx context.Context, id, by string) {
	cursor := ""
	for {
		kids, next, err := e.st.ListInstances(ctx, store.InstanceFilter{Parent: id}, store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			e.log.Error("flow engine: cancel children", "instance", id, "err", err)
			return
		}
		for _, k := range kids {
			if k.Ended() {
				continue
			}
			if _, err := e.cancelOne(ctx, k.ID, by, func(store.Instance) bool { return true }); err != nil && !errors.Is(err, ErrEnded) {
				e.log.Error("flow engine: cancel child", "instance", id, "child", k.ID, "err", err)
			}
			e.cancelChildren(ctx, k.ID, by)
		}
		if next == "" {
			return
		}
		cursor = next
	}
}

func (e *Engine) lastRecord(ctx context.Context, inst store.Instance) (store.StepRecord, error) {
	cursor := ""
	var last store.StepRecord
	for {
		recs, next, err := e.st.History(ctx, inst.ID, store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return store.StepRecord{}, err
		}
		if len(recs) > 0 {
			last = recs[len(recs)-1]
		}
		if next == "" {
			return last, nil
		}
		cursor = next
	}
}

// wake is what the job queue does with a due wake (or a leftover takeover
// job, Seq 0).
func (e *Engine) wake(ctx context.Context, w store.Wake) error {
	e.metrics.WakeLag(w.At, e.now())
	return e.resume(ctx, w.InstanceID, w.Seq)
}

// resume claims an instance (parked at seq, or with an expired lease when
// seq is 0) and runs it on this server. A claim that fails because the
// instance moved on is not an error: the job was stale.
func (e *Engine) resume(ctx context.Context, id string, seq int) error {
	if e.stopping.Load() {
		return ErrStopping
	}
	now := e.now()
	inst, err := e.st.ClaimInstance(ctx, id, seq, e.owner, now, now.Add(e.lease))
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("claim instance %s: %w", id, err)
	}
	r, err := e.loadRunner(ctx, inst)
	if err != nil {
		// Give it back rather than hold it until the lease runs out.
		return err
	}
	if step, ok := r.parkedOnTask(); ok {
		return r.runDeadline(ctx, step)
	}
	if err := r.prepareResume(ctx, seq == 0); err != nil {
		return err
	}
	r.start()
	return nil
}

// prepareResume finishes the record of the step the instance was parked
// or interrupted at, before the run goes on.
func (r *runner) prepareResume(ctx context.Context, takeover bool) error {
	step, ok := r.def.Step(r.inst.CurrentStep)
	if !ok {
		return nil // advance fails the instance with a clear error
	}
	last, err := r.e.lastRecord(ctx, r.inst)
	if err != nil {
		return err
	}
	parked := last.Seq == r.inst.Seq && last.StepID == step.ID && last.EndedAt.IsZero()
	switch {
	case step.Type == flow.TypeWait && parked:
		if takeover && last.Status == store.StepWaiting && !r.waitOver(step) {
			// Taken over while waiting is not expected (waits are
			// unowned), but do not end a wait early.
			return nil
		}
		r.resumeWait(step)
	case parked && last.Status == store.StepRunning:
		// Interrupted mid-step (its server died): the attempt failed;
		// the step runs again as the next attempt.
		last.Status = store.StepFailed
		last.EndedAt = r.e.now()
		last.Error = "interrupted: the server running it stopped"
		r.pending = append(r.pending, last)
		if step.Type == flow.TypeHTTP {
			visit := last.Seq
			if rs := r.st.Retry; rs != nil && rs.Step == step.ID {
				visit = rs.Visit
			}
			r.st.Retry = &retryState{Step: step.ID, Attempt: last.Attempt, Visit: visit}
		}
	}
	return nil
}

func (r *runner) waitOver(step *flow.Step) bool {
	deadline, err := step.Wait.Deadline(r.st.WaitSince, &r.env)
	return err != nil || !r.e.now().Before(deadline)
}

// wakeLocally resumes a parked instance at its deadline on this server,
// ahead of the queue's job (which then finds it moved on).
func (e *Engine) wakeLocally(id string, seq int, at time.Time) {
	if at.Sub(e.now()) > 10*time.Minute {
		return // the queue is precise enough at that range
	}
	e.afterFunc(at, func() {
		if err := e.resume(e.ctx, id, seq); err != nil && !errors.Is(err, ErrStopping) {
			e.log.Warn("flow engine: local wake failed; the queue will retry", "instance", id, "err", err)
		}
	})
}
