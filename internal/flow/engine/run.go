package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/store"
)

// state is an instance's private resume state, kept sealed in the store:
// what a server needs to go on from CurrentStep besides input and vars.
type state struct {
	// Outputs are the outputs of finished steps, unmasked.
	Outputs map[string]map[string]any `json:"outputs,omitempty"`
	// Errors are the failures on_error caught, by step id, as
	// steps.<id>.error shows them.
	Errors map[string]map[string]any `json:"errors,omitempty"`
	// Retry is set while an http step waits for its next attempt.
	Retry *retryState `json:"retry,omitempty"`
	// WaitSince is when the current wait step began.
	WaitSince time.Time `json:"wait_since,omitzero"`
	// Parked is the record of the step the instance waits at (a wait or
	// a task), so ending it keeps its start and input without reading
	// the history back.
	Parked *parkedState `json:"parked,omitempty"`
	// Deadline is set while a task with due, remind or escalate waits.
	Deadline *deadlineState `json:"deadline,omitempty"`
	// Child is set while a flow step waits for its child instance.
	Child *childState `json:"child,omitempty"`
	// Parent is set on a child instance: the flow step that waits for it.
	Parent *parentState `json:"parent,omitempty"`
	// Fork is set while a parallel or foreach step waits for its
	// branches.
	Fork *forkState `json:"fork,omitempty"`
	// Branch is set on a branch instance: which branch or item it runs.
	Branch *branchState `json:"branch,omitempty"`
	// Locals are the foreach item names the steps see (flow.Env.Locals).
	Locals map[string]any `json:"locals,omitempty"`
	// Connect is set while an oauth_user_login step waits for its user.
	Connect *connectState `json:"connect,omitempty"`
	// Secrets are the values from secret sources this instance has seen
	// (see learnSecret): masked wherever they would be recorded.
	Secrets []string `json:"secrets,omitempty"`
	// Vars are the variables unmasked, when the instance row's vars
	// (what the API shows) have secrets masked.
	Vars json.RawMessage `json:"vars,omitempty"`
	// Response is the return step's answer unmasked, when the instance's
	// output has secrets masked: the invoke answer is the flow's, for its
	// caller, and is not a record.
	Response json.RawMessage `json:"response,omitempty"`
}

type parkedState struct {
	Seq       int             `json:"seq"`
	StartedAt time.Time       `json:"started_at"`
	Input     json.RawMessage `json:"input,omitempty"`
}

type retryState struct {
	Step    string `json:"step"`
	Attempt int    `json:"attempt"`
	// Visit is the seq of the first attempt: the Idempotency-Key stays
	// the same across the attempts of one visit of the step.
	Visit int `json:"visit"`
}

// starter is the JSON form of flow.User in the instance row.
type starter struct {
	ID      string   `json:"id"`
	Kind    string   `json:"kind"`
	Subject string   `json:"subject"`
	Issuer  string   `json:"issuer"`
	Roles   []string `json:"roles"`
}

// Response is what a return step answers an invoke with; an instance's
// output.
type Response struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    any               `json:"body,omitempty"`
}

// runner advances one instance on this server. It is used by one
// goroutine at a time.
type runner struct {
	e    *Engine
	def  *flow.Definition
	inst store.Instance
	st   state
	env  flow.Env
	// traceParent is the span of the request that started the instance, so
	// the first run's steps join its trace; invalid for resumed runs.
	traceParent trace.SpanContext

	created bool
	// Waiting for the next commit.
	pending []store.StepRecord
	tasks   []*store.Task
	act     *store.TaskAct
	esc     *store.TaskEscalation
	mails   []store.Mail
	wake    *store.Wake
	idem    *store.Idempotency
	cancel  bool
	// claim and replay guard the first commit (startGuards); guardTaken
	// is set when either was taken already.
	claim      *store.ScheduleClaim
	replay     *store.ReplayGuard
	guardTaken bool

	// firstCommit is closed after the instance is first written (or the
	// run fails before that), for callers that answer once it exists.
	firstCommit chan struct{}
	firstErr    error
	firstDone   bool
	// existing is set when CreateInstance found the Idempotency-Key used.
	existing string
	// snapshot is the instance as its first commit wrote it.
	snapshot store.Instance
	// masker masks st.Secrets; nil until needed, and reset when a
	// secret is learned.
	masker *masker
	// caught is set when on_error took a failing step's instance
	// elsewhere: the step's run is over though it returned no error.
	caught bool
}

// errStop ends a run without error: the instance waits, ended, or another
// server owns it now.
var errStop = errors.New("stop")

// loadRunner rebuilds a runner for an instance this server has claimed.
func (e *Engine) loadRunner(ctx context.Context, inst store.Instance) (*runner, error) {
	def, err := e.Definition(ctx, inst.Workflow, inst.Version)
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", inst.ID, err)
	}
	r := &runner{e: e, def: def, inst: inst, created: true}
	if len(inst.State) > 0 {
		if err := json.Unmarshal(inst.State, &r.st); err != nil {
			return nil, fmt.Errorf("instance %s: state: %w", inst.ID, err)
		}
	}
	var s starter
	if err := json.Unmarshal(inst.Starter, &s); err != nil {
		return nil, fmt.Errorf("instance %s: starter: %w", inst.ID, err)
	}
	var input, vars map[string]any
	if err := json.Unmarshal(inst.Input, &input); err != nil {
		return nil, fmt.Errorf("instance %s: input: %w", inst.ID, err)
	}
	varsJSON := inst.Vars
	if r.st.Vars != nil {
		varsJSON = r.st.Vars
	}
	if err := json.Unmarshal(varsJSON, &vars); err != nil {
		return nil, fmt.Errorf("instance %s: vars: %w", inst.ID, err)
	}
	r.initEnv(input, vars, s)
	return r, nil
}

func (r *runner) initEnv(input, vars map[string]any, s starter) {
	if input == nil {
		input = map[string]any{}
	}
	if vars == nil {
		vars = map[string]any{}
	}
	if r.st.Outputs == nil {
		r.st.Outputs = map[string]map[string]any{}
	}
	steps := make(map[string]flow.StepState, len(r.st.Outputs))
	for id, out := range r.st.Outputs {
		steps[id] = flow.StepState{Output: out}
	}
	for id, e := range r.st.Errors {
		ss := steps[id]
		ss.Error = e
		steps[id] = ss
	}
	r.env = flow.Env{
		Input:  input,
		Vars:   vars,
		Steps:  steps,
		Locals: r.st.Locals,
		Instance: flow.Instance{ID: r.inst.ID, Workflow: r.inst.Workflow, Version: r.inst.Version,
			StartedAt: r.inst.StartedAt, StartedBy: r.inst.StartedBy},
		User: flow.User{ID: s.ID, Kind: s.Kind, Subject: s.Subject, Issuer: s.Issuer, Roles: s.Roles},
	}
}

// go runs the instance in the background on the engine's context. The
// caller has claimed it (or is creating it).
func (r *runner) start() {
	r.e.runs.Add(1)
	go func() {
		defer r.e.runs.Done()
		err := r.advance(r.e.ctx)
		r.signalFirst(err)
		if err != nil && !errors.Is(err, errStop) {
			r.e.log.Error("flow engine: run stopped", "instance", r.inst.ID, "workflow", r.inst.Workflow, "err", r.maskText(err.Error()))
		}
	}()
}

func (r *runner) signalFirst(err error) {
	if r.firstDone {
		return
	}
	r.firstDone = true
	if err != nil && !errors.Is(err, errStop) {
		r.firstErr = err
	}
	if r.firstCommit != nil {
		close(r.firstCommit)
	}
}

// advance runs steps until the instance waits, ends, or is lost.
func (r *runner) advance(ctx context.Context) error {
	for n := 0; ; n++ {
		if n >= maxPureSteps {
			// A durable point of its own, so that one commit never
			// carries more than this many records; only the step budget
			// ends a loop.
			if err := r.commit(ctx); err != nil {
				return err
			}
			n = 0
		}
		cur := r.inst.CurrentStep
		if cur == "" {
			// The last step without next: completed with no output, or,
			// for a branch, with its last step's.
			r.endInstance(store.StatusCompleted, r.branchOutput(), "")
			return r.finish(ctx)
		}
		if r.inst.Seq >= r.e.maxSteps {
			return r.budgetExhausted(ctx, cur)
		}
		step, ok := r.def.Step(cur)
		if !ok {
			return r.failInstance(ctx, cur, fmt.Errorf("no such step in version %d", r.def.Version))
		}
		r.caught = false
		if err := r.resolveSecrets(ctx, step); err != nil {
			return err
		}
		if r.caught {
			// A missing secret failed the step before it ran and its
			// on_error took the instance elsewhere.
			continue
		}
		sctx, span := r.startStepSpan(ctx, step)
		var err error
		switch step.Type {
		case flow.TypeSet:
			err = r.runSet(step)
		case flow.TypeSwitch:
			err = r.runSwitch(step)
		// These end or park the instance (errStop) unless on_error caught
		// their failure, which goes on like any step.
		case flow.TypeReturn:
			err = r.runReturn(sctx, step)
		case flow.TypeFail:
			err = r.runFail(sctx, step)
		case flow.TypeWait:
			err = r.runWait(sctx, step)
		case flow.TypeTask:
			err = r.runTask(sctx, step)
		case flow.TypeHTTP:
			err = r.runHTTP(sctx, step)
			if err == nil {
				n = 0 // it committed
			}
		case flow.TypeOAuthServerLogin:
			err = r.runServerLogin(sctx, step)
		case flow.TypeOAuthRefresh:
			err = r.runRefresh(sctx, step)
		case flow.TypeOAuthUserLogin:
			err = r.runUserLogin(sctx, step)
		case flow.TypeFlow:
			err = r.runSubflow(sctx, step)
		case flow.TypeParallel, flow.TypeForeach:
			err = r.runFork(sctx, step)
		case flow.TypeEmail:
			err = r.runEmail(sctx, step)
			if err == nil {
				n = 0 // it committed
			}
		default:
			err = r.failStep(step, time.Time{}, nil, fmt.Errorf("step type %s is not available in this version of Flowgate", step.Type))
		}
		endStepSpan(span, err)
		if err != nil {
			return err
		}
	}
}

// startStepSpan starts the span of one step run: a child of the span of
// the request that started the instance on its first run.
func (r *runner) startStepSpan(ctx context.Context, step *flow.Step) (context.Context, trace.Span) {
	if r.traceParent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, r.traceParent)
	}
	return r.e.tracing.Tracer().Start(ctx, "step "+string(step.Type), trace.WithAttributes(
		attribute.String("flowgate.flow", r.inst.Workflow),
		attribute.Int("flowgate.flow_version", r.inst.Version),
		attribute.String("flowgate.instance", r.inst.ID),
		attribute.String("flowgate.step", step.ID),
		attribute.String("flowgate.step_type", string(step.Type)),
	))
}

// endStepSpan ends a step's span; errStop (the run stops at a durable
// point) is no error.
func endStepSpan(span trace.Span, err error) {
	if err != nil && !errors.Is(err, errStop) {
		span.SetStatus(codes.Error, "step run stopped")
	}
	span.End()
}

// budgetExhausted fails the instance instead of running one step more
// than its budget. Every step run (every attempt) is one record, so the
// record count, Seq, is what the instance has run over its whole life,
// across servers and restarts; the step that did not run gets no record,
// so the history never holds more than the budget.
func (r *runner) budgetExhausted(ctx context.Context, next string) error {
	r.endInstance(store.StatusFailed, nil, fmt.Sprintf(
		"step_budget_exhausted: the instance ran %d steps, as many as limits.max_steps allows; step %q did not run", r.inst.Seq, next))
	return r.finish(ctx)
}

// checkVars reports vars grown larger than the engine allows; the error
// names the sizes.
func (r *runner) checkVars() error {
	b, err := json.Marshal(r.env.Vars)
	if err != nil {
		return fmt.Errorf("vars cannot be written as JSON: %w", err)
	}
	if int64(len(b)) > r.e.maxVars {
		return fmt.Errorf("%w: vars would be %d bytes, more than limits.max_vars (%d bytes)", ErrVarsTooLarge, len(b), r.e.maxVars)
	}
	return nil
}

// record appends a step record with the next seq and returns its index in
// pending.
func (r *runner) record(step *flow.Step, status string, attempt int, startedAt time.Time, input any) int {
	r.inst.Seq++
	rec := store.StepRecord{
		InstanceID: r.inst.ID,
		Seq:        r.inst.Seq,
		StepID:     step.ID,
		Type:       string(step.Type),
		Status:     status,
		Attempt:    attempt,
		StartedAt:  startedAt,
		Input:      r.recordJSON(input),
	}
	r.pending = append(r.pending, rec)
	if status == store.StepWaiting {
		r.st.Parked = &parkedState{Seq: rec.Seq, StartedAt: startedAt, Input: rec.Input}
	}
	return len(r.pending) - 1
}

// endRecord finishes pending[i].
func (r *runner) endRecord(i int, step *flow.Step, status string, output map[string]any, errMsg string) {
	rec := &r.pending[i]
	rec.Status = status
	rec.EndedAt = r.e.now()
	if output != nil {
		rec.Output = r.outputJSON(step, output)
	}
	rec.Error = r.maskText(errMsg)
}

// encodeRecord is step data encoded; recordJSON masks it.
func encodeRecord(v any) []byte {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Step data is JSON-shaped by construction; say so rather than drop it.
		b, _ = json.Marshal(map[string]string{"unrepresentable": err.Error()})
	}
	return b
}

// setOutput stores a finished step's output for expressions.
func (r *runner) setOutput(step *flow.Step, out map[string]any) {
	r.st.Outputs[step.ID] = out
	if r.st.Branch != nil {
		r.st.Branch.Last = step.ID
	}
	// A step that succeeds on a later visit no longer shows the error
	// an earlier one had.
	delete(r.st.Errors, step.ID)
	r.env.Steps[step.ID] = flow.StepState{Output: out}
}

func (r *runner) runSet(step *flow.Step) error {
	start := r.e.now()
	i := r.record(step, store.StepRunning, 1, start, nil)
	out := make(map[string]any, len(step.Set.VarsOrder))
	before := maps.Clone(r.env.Vars)
	for _, name := range step.Set.VarsOrder {
		v, err := flow.EvaluateTree(step.Set.Vars[name], &r.env)
		if err != nil {
			r.env.Vars = before
			return r.failRecorded(i, step, err)
		}
		out[name] = v
		// Later assignments of one step see earlier ones.
		r.env.Vars[name] = v
	}
	if err := r.checkVars(); err != nil {
		// The instance keeps the vars it had: a failed step writes
		// nothing of what it made.
		r.env.Vars = before
		return r.failRecorded(i, step, err)
	}
	r.endRecord(i, step, store.StepCompleted, out, "")
	r.setOutput(step, out)
	r.inst.CurrentStep = r.def.After(step.ID)
	return nil
}

func (r *runner) runSwitch(step *flow.Step) error {
	i := r.record(step, store.StepRunning, 1, r.e.now(), nil)
	next, err := r.def.AfterSwitch(step.ID, &r.env)
	if err != nil {
		return r.failRecorded(i, step, err)
	}
	out := map[string]any{"next": next}
	r.endRecord(i, step, store.StepCompleted, out, "")
	r.setOutput(step, out)
	r.inst.CurrentStep = next
	return nil
}

func (r *runner) runReturn(ctx context.Context, step *flow.Step) error {
	i := r.record(step, store.StepRunning, 1, r.e.now(), nil)
	status, err := step.Return.StatusCode(&r.env)
	if err != nil {
		return r.failRecorded(i, step, err)
	}
	resp := Response{Status: status}
	if len(step.Return.Headers) > 0 {
		resp.Headers = make(map[string]string, len(step.Return.Headers))
		for k, t := range step.Return.Headers {
			v, err := t.EvaluateString(&r.env)
			if err != nil {
				return r.failRecorded(i, step, err)
			}
			resp.Headers[k] = v
		}
	}
	if step.Return.HasBody {
		body, err := flow.EvaluateTree(step.Return.Body, &r.env)
		if err != nil {
			return r.failRecorded(i, step, err)
		}
		resp.Body = body
	}
	r.endRecord(i, step, store.StepCompleted, nil, "")
	out, err := json.Marshal(resp)
	if err != nil {
		return r.failRecorded(i, step, fmt.Errorf("the response cannot be written as JSON: %w", err))
	}
	r.pending[i].Output = r.maskJSON(out)
	if masked := r.pending[i].Output; !bytes.Equal(masked, out) {
		r.st.Response = out
	}
	if r.st.Branch != nil {
		// A return ends only its branch, whose output is the answer.
		var m map[string]any
		_ = json.Unmarshal(out, &m)
		r.setOutput(step, m)
	}
	r.endInstance(store.StatusCompleted, r.pending[i].Output, "")
	return r.finish(ctx)
}

func (r *runner) runFail(ctx context.Context, step *flow.Step) error {
	i := r.record(step, store.StepRunning, 1, r.e.now(), nil)
	msg, err := step.Fail.Error.EvaluateString(&r.env)
	if err != nil {
		return r.failRecorded(i, step, err)
	}
	r.endRecord(i, step, store.StepCompleted, map[string]any{"error": msg}, "")
	return r.stepFailed(ctx, step, &stepFailure{kind: errTypeFail, err: errors.New(msg)})
}

func (r *runner) runWait(ctx context.Context, step *flow.Step) error {
	start := r.e.now()
	deadline, err := step.Wait.Deadline(start, &r.env)
	if err != nil {
		i := r.record(step, store.StepRunning, 1, start, nil)
		return r.failRecorded(i, step, err)
	}
	r.record(step, store.StepWaiting, 1, start, map[string]any{"until": deadline.Format(time.RFC3339Nano)})
	r.st.WaitSince = start
	return r.parkUntil(ctx, deadline)
}

// parkUntil commits the instance as waiting, unowned, with a wake at at
// through the queue and a local timer for the same moment.
func (r *runner) parkUntil(ctx context.Context, at time.Time) error {
	r.inst.Status = store.StatusWaiting
	r.inst.Owner = ""
	r.inst.LeaseUntil = time.Time{}
	r.wake = &store.Wake{InstanceID: r.inst.ID, Seq: r.inst.Seq, At: at}
	if err := r.commit(ctx); err != nil {
		return err
	}
	r.e.wakeLocally(r.inst.ID, r.inst.Seq, at)
	r.e.notify(r.inst.ID)
	return errStop
}

// resumeWait finishes the wait step the instance is parked on.
func (r *runner) resumeWait(step *flow.Step) {
	since := r.st.WaitSince
	r.st.WaitSince = time.Time{}
	out := map[string]any{"waited_ms": r.e.now().Sub(since).Milliseconds()}
	r.pending = append(r.pending, r.parkedRecord(step, store.StepCompleted, out))
	r.setOutput(step, out)
	r.inst.CurrentStep = r.def.After(step.ID)
}

// parkedRecord rewrites the record of the step the instance was parked
// on (seq = inst.Seq) as ended.
func (r *runner) parkedRecord(step *flow.Step, status string, out map[string]any) store.StepRecord {
	rec := store.StepRecord{InstanceID: r.inst.ID, Seq: r.inst.Seq, StepID: step.ID, Type: string(step.Type),
		Status: status, Attempt: 1, EndedAt: r.e.now()}
	if p := r.st.Parked; p != nil && p.Seq == r.inst.Seq {
		rec.StartedAt, rec.Input = p.StartedAt, p.Input
	}
	r.st.Parked = nil
	r.st.Deadline = nil
	if out != nil {
		rec.Output = r.outputJSON(step, out)
	}
	return rec
}

func (r *runner) runTask(ctx context.Context, step *flow.Step) error {
	start := r.e.now()
	t := step.Task
	title, err := t.Title.EvaluateString(&r.env)
	if err != nil {
		i := r.record(step, store.StepRunning, 1, start, nil)
		return r.failRecorded(i, step, err)
	}
	assignees, err := t.ResolveAssignees(&r.env)
	if err != nil {
		i := r.record(step, store.StepRunning, 1, start, nil)
		return r.failRecorded(i, step, err)
	}
	var form []byte
	if len(t.Form) > 0 {
		form, err = json.Marshal(formJSON(t))
		if err != nil {
			i := r.record(step, store.StepRunning, 1, start, nil)
			return r.failRecorded(i, step, err)
		}
	}
	dl, err := newDeadline(t.Deadline, start, &r.env)
	if err != nil {
		i := r.record(step, store.StepRunning, 1, start, nil)
		return r.failRecorded(i, step, err)
	}
	input := map[string]any{"title": title, "assignees": assignees, "actions": t.Actions}
	task := &store.Task{
		InstanceID: r.inst.ID, Workflow: r.inst.Workflow, StepID: step.ID,
		Type: store.TaskTypeTask, Title: r.maskText(title), Assignees: assignees, Actions: t.Actions,
		Form: form, Status: store.TaskOpen, CreatedAt: start,
	}
	if dl != nil && !dl.DueAt.IsZero() {
		input["due_at"] = dl.DueAt.Format(time.RFC3339Nano)
		task.DueAt = dl.DueAt
	}
	r.record(step, store.StepWaiting, 1, start, input)
	task.Seq = r.inst.Seq
	r.tasks = append(r.tasks, task)
	r.taskNotice(ctx, store.MailTaskAssigned, assignees, len(r.tasks), 0)
	if dl != nil {
		dl.Seq = r.inst.Seq
		r.st.Deadline = dl
	}
	return r.parkOnTask(ctx)
}

// FormField is a task form field as the API shows it.
type FormField struct {
	Type        string `json:"type"`
	Required    bool   `json:"required"`
	Description string `json:"description,omitempty"`
	Enum        []any  `json:"enum,omitempty"`
	Default     any    `json:"default,omitempty"`
}

// formJSON keeps the fields in declaration order.
func formJSON(t *flow.Task) orderedForm {
	f := orderedForm{order: t.FormOrder, fields: make(map[string]FormField, len(t.Form))}
	for name, fl := range t.Form {
		f.fields[name] = FormField{Type: fl.Type, Required: fl.Required, Description: fl.Description, Enum: fl.Enum, Default: fl.Default}
	}
	return f
}

type orderedForm struct {
	order  []string
	fields map[string]FormField
}

func (f orderedForm) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, name := range f.order {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(name)
		v, err := json.Marshal(f.fields[name])
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}

// failRecorded ends pending[i] as failed and the instance with it,
// unless the step's on_error catches the failure.
func (r *runner) failRecorded(i int, step *flow.Step, err error) error {
	r.endRecord(i, step, store.StepFailed, nil, err.Error())
	return r.stepFailed(context.WithoutCancel(r.e.ctx), step, err)
}

// stepFailed ends the instance as failed by err in step, or, when the
// step has on_error, sends it there with steps.<id>.error set and returns
// nil so that the run goes on. The step's record is already written as
// failed either way.
func (r *runner) stepFailed(ctx context.Context, step *flow.Step, err error) error {
	if step.OnError == "" {
		r.failAt(step.ID, err)
		return r.finish(ctx)
	}
	e := errorValue(err)
	e["message"] = r.maskText(fmt.Sprint(e["message"]))
	if r.st.Errors == nil {
		r.st.Errors = map[string]map[string]any{}
	}
	r.st.Errors[step.ID] = e
	r.env.Steps[step.ID] = flow.StepState{Error: e}
	delete(r.st.Outputs, step.ID)
	r.st.Retry = nil
	r.st.Parked = nil
	r.st.Deadline = nil
	r.inst.CurrentStep = step.OnError
	r.caught = true
	r.e.log.Info("flow engine: step failed, going on at its on_error", "instance", r.inst.ID, "step", step.ID, "on_error", step.OnError)
	return nil
}

// failStep records a failed step (started now unless start is given) and
// fails the instance.
func (r *runner) failStep(step *flow.Step, start time.Time, input any, err error) error {
	if start.IsZero() {
		start = r.e.now()
	}
	i := r.record(step, store.StepRunning, 1, start, input)
	return r.failRecorded(i, step, err)
}

// failInstance fails the instance without a step record (the step could
// not even start).
func (r *runner) failInstance(ctx context.Context, stepID string, err error) error {
	r.failAt(stepID, err)
	return r.finish(ctx)
}

// failAt ends the instance as failed by err in step stepID. The message
// names the step once, also when err (an expression's error) already
// names it.
func (r *runner) failAt(stepID string, err error) {
	r.endInstance(store.StatusFailed, nil, flow.StepError(stepID, err).Error())
}

func (r *runner) endInstance(status string, output []byte, errMsg string) {
	now := r.e.now()
	r.inst.Status = status
	r.inst.Output = output
	r.inst.Error = r.maskText(errMsg)
	r.inst.EndedAt = now
	r.inst.Owner = ""
	r.inst.LeaseUntil = time.Time{}
	// A failed instance keeps the step it failed at, for the monitor.
	if status == store.StatusCompleted {
		r.inst.CurrentStep = ""
	}
	r.st.Retry = nil
	if status != store.StatusCompleted {
		r.cancel = true
	}
	r.wakeParent()
}

// encodeRow encodes the instance's vars and resume state for a commit.
// The vars column, which the API shows, has secrets masked; when that
// changed them, the state (sealed in the store) keeps them as they are.
func (r *runner) encodeRow() error {
	vars, err := json.Marshal(r.env.Vars)
	if err != nil {
		return fmt.Errorf("instance %s: vars: %w", r.inst.ID, err)
	}
	r.inst.Vars = r.maskJSON(vars)
	r.st.Vars = nil
	if !bytes.Equal(r.inst.Vars, vars) {
		r.st.Vars = vars
	}
	if r.inst.State, err = json.Marshal(r.st); err != nil {
		return fmt.Errorf("instance %s: state: %w", r.inst.ID, err)
	}
	return nil
}

// finish commits an ended instance and tells waiting callers.
func (r *runner) finish(ctx context.Context) error {
	if err := r.commit(ctx); err != nil {
		return err
	}
	r.e.notify(r.inst.ID)
	if p := r.st.Parent; p != nil {
		// Ahead of the queued wake, which then finds the parent moved on.
		r.e.wakeLocally(p.ID, p.Seq, r.e.now())
	}
	return errStop
}

// countCommitted updates the metrics with what a commit wrote: only
// written progress counts, so a commit that lost the instance to another
// server counts nothing here (that server counts it).
func (r *runner) countCommitted(c store.InstanceCommit) {
	m := r.e.metrics
	for _, rec := range c.Steps {
		if !rec.EndedAt.IsZero() {
			m.StepEnded(rec.Type, rec.Status, rec.EndedAt.Sub(rec.StartedAt))
		}
	}
	m.TasksCreated(r.inst.Workflow, len(c.NewTasks))
	if r.inst.Ended() && r.inst.Branch == "" {
		m.InstanceFinished(r.inst.Workflow, r.inst.Status)
	}
}

// commit writes what is pending in one transaction: the instance row,
// step records, tasks, a wake. The first commit creates the instance.
func (r *runner) commit(ctx context.Context) error {
	now := r.e.now()
	r.inst.UpdatedAt = now
	if r.inst.Owner != "" {
		r.inst.LeaseUntil = now.Add(r.e.lease)
	}
	if err := r.encodeRow(); err != nil {
		return err
	}
	c := store.InstanceCommit{
		Instance:    r.inst,
		Steps:       r.pending,
		NewTasks:    r.tasks,
		Act:         r.act,
		Escalate:    r.esc,
		Mails:       r.mails,
		Wake:        r.wake,
		CancelTasks: r.cancel,
	}
	if !r.created {
		c.Idempotency, c.ScheduleClaim, c.Replay = r.idem, r.claim, r.replay
		existing, err := r.e.st.CreateInstance(ctx, c)
		if err != nil {
			if errors.Is(err, store.ErrConflict) && existing != "" {
				r.existing = existing
			} else if errors.Is(err, store.ErrConflict) && (r.claim != nil || r.replay != nil) {
				r.guardTaken = true
			}
			return err
		}
		r.created = true
		if r.inst.Branch == "" {
			// A branch instance is part of its parent's step.
			r.e.metrics.InstanceStarted(r.inst.Workflow)
		}
	} else {
		c.ExpectOwner = r.e.owner
		if err := r.e.st.CommitInstance(ctx, c); err != nil {
			if errors.Is(err, store.ErrLeaseLost) {
				r.e.log.Warn("flow engine: another server took the instance over", "instance", r.inst.ID)
				return errStop
			}
			return err
		}
	}
	r.countCommitted(c)
	r.pending, r.tasks, r.act, r.esc, r.mails, r.wake, r.idem, r.cancel = nil, nil, nil, nil, nil, nil, nil, false
	if !r.firstDone {
		// What StartInstance answers with, without reading back what was
		// just written; State is the engine's own.
		r.snapshot = r.inst
		r.snapshot.State = nil
		if r.st.Response != nil {
			// The invoke answer, for StartInstance's caller.
			r.snapshot.State, _ = json.Marshal(state{Response: r.st.Response})
		}
		// As the store gives times back: UTC, whole microseconds.
		for _, t := range []*time.Time{&r.snapshot.StartedAt, &r.snapshot.UpdatedAt, &r.snapshot.EndedAt, &r.snapshot.LeaseUntil} {
			if !t.IsZero() {
				*t = t.UTC().Truncate(time.Microsecond)
			}
		}
	}
	r.signalFirst(nil)
	return nil
}
