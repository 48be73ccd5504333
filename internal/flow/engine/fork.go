package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/store"
)

// Parallel and foreach steps (docs/flows.md) run each branch, and each
// item, as an instance of its own: a branch instance, of the same flow
// version, started at the branch's (or the body's) first step, linked to
// its parent like a sub-flow's child and marked with Instance.Branch. So
// every branch and item has what any instance has, without a second
// mechanism: its own current step, leases, takeover after a crash, wakes,
// tasks, and a history of finished steps to resume from. The parent holds
// several current steps at once this way: its own fork step, waiting, and
// those of its branch instances.
//
// The durable points of a fork step, like a flow step's: its record and
// what it forks (the items, evaluated once) are committed before any
// branch instance exists; each is created under an Idempotency-Key made of
// the parent, that record's seq and the branch (or item index), so a
// parent resumed after a crash finds the instances it started instead of
// starting others, and each item runs exactly once. The parent then parks,
// unowned; an ending branch instance's commit carries a wake for it. The
// join is the parent's own commit, fenced by its lease like any other, so
// it happens once however many servers see branches end at the same time.

// forkState is a parallel or foreach step's branches while it waits.
type forkState struct {
	Step string `json:"step"`
	Seq  int    `json:"seq"`
	// Items are the foreach's list, as the step evaluated it.
	Items []any `json:"items,omitempty"`
	// Branches are the parallel's branches in the order written, or the
	// foreach's items started so far, in item order.
	Branches []forkBranch `json:"branches"`
}

// forkBranch is one branch or item and what became of it.
type forkBranch struct {
	Name string `json:"name,omitempty"`
	// ID is the branch instance, once started.
	ID string `json:"id,omitempty"`
	// Status is set once the branch instance has ended, with its output
	// (the last step's) and when it ended.
	Status  string    `json:"status,omitempty"`
	Output  any       `json:"output,omitempty"`
	Error   string    `json:"error,omitempty"`
	EndedAt time.Time `json:"ended_at,omitzero"`
}

func (b *forkBranch) ended() bool { return b.Status != "" }

// branchState is, on a branch instance, which branch or item it runs.
type branchState struct {
	// Step is the parent's parallel or foreach step.
	Step  string `json:"step"`
	Name  string `json:"name,omitempty"`
	Index int    `json:"index"`
	// Last is the step whose output is the branch's: the last to finish.
	Last string `json:"last,omitempty"`
	// StartVars are the vars the branch began with, so that the parent
	// takes back only those the branch changed.
	StartVars map[string]any `json:"start_vars,omitempty"`
}

// forkStart is what a branch instance starts from: where, and what of
// its parent it sees (vars, finished steps' outputs and caught errors,
// the secrets to mask, the foreach names).
type forkStart struct {
	first   string
	label   string
	vars    map[string]any
	locals  map[string]any
	outputs map[string]map[string]any
	errors  map[string]map[string]any
	secrets []string
	branch  branchState
}

// errTypeBranch is steps.<id>.error.type for a branch or an item that
// failed (or was cancelled).
const errTypeBranch = "branch"

// runFork runs a parallel or foreach step: it starts the branches (or
// the items, as many at once as the concurrency allows), takes in those
// that ended, and joins, or parks until a branch instance ends.
func (r *runner) runFork(ctx context.Context, step *flow.Step) error {
	fs := r.st.Fork
	if fs == nil || fs.Step != step.ID || fs.Seq != r.inst.Seq {
		var err error
		if fs, err = r.prepareFork(ctx, step); fs == nil {
			return err
		}
	}
	sinceCommit := 0
	for {
		if err := r.collectBranches(ctx, step, fs); err != nil {
			return err
		}
		if done, failErr := r.forkOutcome(step, fs); done {
			return r.endFork(ctx, step, fs, failErr)
		}
		started, err := r.startBranches(ctx, step, fs)
		if err != nil {
			return err
		}
		if started == 0 {
			break
		}
		// Branches of steps without waits have often ended already, so
		// a long foreach can run here for a while: a durable point every
		// so many starts notices a cancel (the commit is fenced) and
		// bounds what a takeover looks up again.
		if sinceCommit += started; sinceCommit >= max(forkCommitEvery, len(fs.Items)/8) {
			sinceCommit = 0
			if err := r.commit(ctx); err != nil {
				if errors.Is(err, errStop) {
					r.cancelOrphans(ctx, runningBranches(fs))
				}
				return err
			}
		}
	}
	return r.parkForChildren(ctx, runningBranches(fs))
}

// forkCommitEvery is how many branch starts a fork step makes between
// durable points while it does not park; a long list's eighth when more,
// since each commit writes the items again (a state of the parent's).
const forkCommitEvery = 16

// runningBranches lists the branch instances started and not seen ended.
func runningBranches(fs *forkState) []string {
	var running []string
	for _, b := range fs.Branches {
		if b.ID != "" && !b.ended() {
			running = append(running, b.ID)
		}
	}
	return running
}

// prepareFork records a fork step's first run and what it forks, and
// commits; nil when the step failed (err is then what the run returns).
func (r *runner) prepareFork(ctx context.Context, step *flow.Step) (*forkState, error) {
	start := r.e.now()
	fs := &forkState{Step: step.ID}
	var input map[string]any
	if p := step.Parallel; p != nil {
		names := make([]string, len(p.Branches))
		for i, b := range p.Branches {
			names[i] = b.Name
			fs.Branches = append(fs.Branches, forkBranch{Name: b.Name})
		}
		input = map[string]any{"branches": names, "join": p.Join}
	} else {
		v, err := step.Foreach.Items.Evaluate(&r.env)
		if err != nil {
			return nil, r.failStep(step, start, nil, err)
		}
		items, ok := asList(v)
		if !ok {
			return nil, r.failStep(step, start, nil, fmt.Errorf("items: want a list, got %s", jsonType(v)))
		}
		if len(items) > r.e.maxSteps {
			return nil, r.failStep(step, start, nil, fmt.Errorf("items: %d items, more than limits.max_steps (%d) allows an instance to run", len(items), r.e.maxSteps))
		}
		fs.Items = items
		if fs.Items == nil {
			fs.Items = []any{}
		}
		input = map[string]any{"count": len(items), "concurrency": step.Foreach.Concurrency}
	}
	r.record(step, store.StepWaiting, 1, start, input)
	fs.Seq = r.inst.Seq
	r.st.Fork = fs
	r.inst.Status = store.StatusRunning
	// A durable point before any branch exists, so that a parent resumed
	// after a crash starts them under the same seq (and so the same keys),
	// over the same items.
	if err := r.commit(ctx); err != nil {
		return nil, err
	}
	return fs, nil
}

// asList turns an expression's value into a list: any slice or array.
func asList(v any) ([]any, bool) {
	if l, ok := v.([]any); ok {
		return l, true
	}
	rv := reflect.ValueOf(v)
	if !rv.IsValid() || (rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array) {
		return nil, false
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, true
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	}
	if rv := reflect.ValueOf(v); rv.CanInt() || rv.CanFloat() || rv.CanUint() {
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

// collectBranches reads the branch instances that have not ended yet and
// takes in those that have: status, output, and the vars they changed
// (in branch or item order among those ending at once).
func (r *runner) collectBranches(ctx context.Context, step *flow.Step, fs *forkState) error {
	changed := false
	for i := range fs.Branches {
		b := &fs.Branches[i]
		if b.ID == "" || b.ended() {
			continue
		}
		in, err := r.e.st.GetInstance(ctx, b.ID)
		if err != nil {
			return fmt.Errorf("instance %s, step %q: branch instance %s: %w", r.inst.ID, step.ID, b.ID, err)
		}
		if !in.Ended() {
			continue
		}
		b.Status, b.Error, b.EndedAt = in.Status, in.Error, in.EndedAt
		if in.Status != store.StatusCompleted {
			continue
		}
		var st state
		if len(in.State) > 0 {
			if err := json.Unmarshal(in.State, &st); err != nil {
				return fmt.Errorf("instance %s, step %q: branch instance %s: state: %w", r.inst.ID, step.ID, b.ID, err)
			}
		}
		if st.Branch != nil && st.Branch.Last != "" {
			b.Output = st.Outputs[st.Branch.Last]
		}
		// Secrets the branch learned stay masked in the parent too.
		for _, s := range st.Secrets {
			r.learnSecret(s)
		}
		if err := r.takeBranchVars(in, &st); err != nil {
			return fmt.Errorf("instance %s, step %q: branch instance %s: %w", r.inst.ID, step.ID, b.ID, err)
		}
		if step.Type == flow.TypeParallel {
			// Steps of a branch are steps of the flow: expressions after
			// the join see them as they see any finished step.
			for id, out := range st.Outputs {
				if strings.HasPrefix(r.def.Scope(id), step.ID+"/"+b.Name) {
					r.st.Outputs[id] = out
					r.env.Steps[id] = flow.StepState{Output: out}
				}
			}
		}
		changed = true
	}
	if changed {
		return r.checkVars()
	}
	return nil
}

// takeBranchVars sets in the parent the vars an ended branch changed.
func (r *runner) takeBranchVars(in store.Instance, st *state) error {
	raw := in.Vars
	if st.Vars != nil {
		raw = st.Vars
	}
	var vars map[string]any
	if err := json.Unmarshal(raw, &vars); err != nil {
		return fmt.Errorf("vars: %w", err)
	}
	var before map[string]any
	if st.Branch != nil {
		before = st.Branch.StartVars
	}
	for k, v := range vars {
		if old, ok := before[k]; ok && sameJSON(old, v) {
			continue
		}
		r.env.Vars[k] = v
	}
	return nil
}

// sameJSON compares two values as JSON documents.
func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// forkOutcome says whether the step is over, and failErr when it failed:
// join all (and a foreach) ends when every branch completed or one did
// not; join any when one completed (the earliest to end wins) or none
// can.
func (r *runner) forkOutcome(step *flow.Step, fs *forkState) (bool, error) {
	total := len(fs.Branches)
	if step.Foreach != nil {
		total = len(fs.Items)
	}
	completed, ended := 0, 0
	var failed *forkBranch
	for i := range fs.Branches {
		b := &fs.Branches[i]
		if !b.ended() {
			continue
		}
		ended++
		if b.Status == store.StatusCompleted {
			completed++
		} else if failed == nil || b.EndedAt.Before(failed.EndedAt) {
			failed = b
		}
	}
	if step.Parallel != nil && step.Parallel.Join == flow.JoinAny {
		if completed > 0 {
			return true, nil
		}
		if ended == total {
			return true, &stepFailure{kind: errTypeBranch, err: fmt.Errorf("no branch completed: %s", r.branchFailure(step, failed))}
		}
		return false, nil
	}
	if failed != nil {
		return true, &stepFailure{kind: errTypeBranch, err: errors.New(r.branchFailure(step, failed))}
	}
	return completed == total, nil
}

// branchFailure says which branch or item did not complete, and why.
func (r *runner) branchFailure(step *flow.Step, b *forkBranch) string {
	what := "branch " + b.Name
	if step.Foreach != nil {
		what = "item " + strconv.Itoa(r.branchIndex(b))
	}
	msg := fmt.Sprintf("%s (instance %s) ended %s", what, b.ID, b.Status)
	if b.Error != "" {
		msg += ": " + b.Error
	}
	return msg
}

func (r *runner) branchIndex(b *forkBranch) int {
	i, _ := strconv.Atoi(b.Name)
	return i
}

// startBranches starts the branches not started yet: every branch of a
// parallel, and for a foreach the next items while fewer than its
// concurrency run. It returns how many it started.
func (r *runner) startBranches(ctx context.Context, step *flow.Step, fs *forkState) (int, error) {
	var todo []int
	if p := step.Parallel; p != nil {
		for i := range fs.Branches {
			if fs.Branches[i].ID == "" {
				todo = append(todo, i)
			}
		}
	} else {
		running := 0
		for _, b := range fs.Branches {
			if !b.ended() {
				running++
			}
		}
		for n := len(fs.Branches); n < len(fs.Items) && running < step.Foreach.Concurrency; n++ {
			fs.Branches = append(fs.Branches, forkBranch{Name: strconv.Itoa(n)})
			todo = append(todo, n)
			running++
		}
	}
	for _, i := range todo {
		b := &fs.Branches[i]
		id, err := r.startBranch(ctx, step, fs, i)
		if err != nil {
			return 0, err
		}
		b.ID = id
	}
	return len(todo), nil
}

// startBranch starts branch (or item) i of the fork as a branch instance
// and returns its id; the same one when it was started before.
func (r *runner) startBranch(ctx context.Context, step *flow.Step, fs *forkState, i int) (string, error) {
	b := &fs.Branches[i]
	fsStart := forkStart{vars: maps.Clone(r.env.Vars), locals: maps.Clone(r.st.Locals),
		outputs: r.st.Outputs, errors: r.st.Errors, secrets: r.st.Secrets}
	if fsStart.locals == nil {
		fsStart.locals = map[string]any{}
	}
	if p := step.Parallel; p != nil {
		br := p.Branches[slices.IndexFunc(p.Branches, func(x flow.Branch) bool { return x.Name == b.Name })]
		fsStart.first = br.Steps[0].ID
		fsStart.label = step.ID + "/" + b.Name
		fsStart.branch = branchState{Step: step.ID, Name: b.Name, Index: i}
	} else {
		fe := step.Foreach
		fsStart.first = fe.Steps[0].ID
		fsStart.label = step.ID + "/" + b.Name
		fsStart.branch = branchState{Step: step.ID, Index: i}
		fsStart.locals[fe.As] = fs.Items[i]
		fsStart.locals[fe.As+"_index"] = i
	}
	fsStart.branch.StartVars = fsStart.vars
	var input map[string]any
	if err := json.Unmarshal(r.inst.Input, &input); err != nil {
		return "", fmt.Errorf("instance %s: input: %w", r.inst.ID, err)
	}
	started, err := r.e.start(ctx, r.def, input, Caller{User: r.env.User}, r.inst.Depth, startGuards{
		// The parent as the principal: no caller can send this key.
		idem:   &store.Idempotency{Principal: "instance:" + r.inst.ID, Key: "fork." + strconv.Itoa(fs.Seq) + "." + b.Name},
		parent: &parentState{ID: r.inst.ID, Seq: fs.Seq},
		fork:   &fsStart,
	})
	if err != nil {
		// Not the flow's fault (the store, a stopping engine): the run
		// stops and is taken over, and the same key finds the branch.
		return "", fmt.Errorf("instance %s, step %q: start %s: %w", r.inst.ID, step.ID, fsStart.label, err)
	}
	return started.Instance.ID, nil
}

// becomeBranch makes a new runner the branch instance fs describes.
func (r *runner) becomeBranch(fs *forkStart) {
	r.inst.CurrentStep = fs.first
	r.inst.Branch = fs.label
	r.st.Branch = &fs.branch
	r.st.Locals = fs.locals
	r.st.Secrets = slices.Clone(fs.secrets)
	r.st.Outputs = maps.Clone(fs.outputs)
	if r.st.Outputs == nil {
		r.st.Outputs = map[string]map[string]any{}
	}
	r.st.Errors = maps.Clone(fs.errors)
	r.env.Vars = maps.Clone(fs.vars)
	if r.env.Vars == nil {
		r.env.Vars = map[string]any{}
	}
	r.env.Locals = r.st.Locals
	for id, out := range r.st.Outputs {
		r.env.Steps[id] = flow.StepState{Output: out}
	}
	for id, e := range r.st.Errors {
		ss := r.env.Steps[id]
		ss.Error = e
		r.env.Steps[id] = ss
	}
	r.masker = nil
}

// endFork finishes the fork step: cancels the branches still running (the
// losers of join any, the rest after a failure), then records the output
// and goes on, or fails the step.
func (r *runner) endFork(ctx context.Context, step *flow.Step, fs *forkState, failErr error) error {
	var winner *forkBranch
	if step.Parallel != nil && step.Parallel.Join == flow.JoinAny && failErr == nil {
		for i := range fs.Branches {
			b := &fs.Branches[i]
			if b.Status == store.StatusCompleted && (winner == nil || b.EndedAt.Before(winner.EndedAt)) {
				winner = b
			}
		}
	}
	for i := range fs.Branches {
		b := &fs.Branches[i]
		if b.ID == "" || b.ended() {
			continue
		}
		reason := "the step failed"
		if winner != nil {
			reason = "branch " + winner.Name + " won"
		}
		in, err := r.e.cancelOne(ctx, b.ID, "flowgate ("+step.ID+": "+reason+")", func(store.Instance) bool { return true })
		if err != nil && !errors.Is(err, ErrEnded) {
			return fmt.Errorf("instance %s, step %q: cancel branch instance %s: %w", r.inst.ID, step.ID, b.ID, err)
		}
		r.e.cancelChildren(ctx, b.ID, "flowgate ("+step.ID+")")
		if errors.Is(err, ErrEnded) {
			// It ended meanwhile, as it ended; a branch that completed
			// after the winner is not taken in.
			b.Status, b.Error, b.EndedAt = in.Status, in.Error, in.EndedAt
		} else {
			b.Status, b.Error, b.EndedAt = store.StatusCancelled, in.Error, in.EndedAt
		}
	}
	r.st.Fork = nil
	var out map[string]any
	if step.Parallel != nil {
		branches := make(map[string]any, len(fs.Branches))
		for _, b := range fs.Branches {
			branches[b.Name] = map[string]any{"status": b.Status, "output": b.Output}
		}
		out = map[string]any{"branches": branches}
		if winner != nil {
			out["winner"] = winner.Name
		}
	} else {
		items := make([]any, len(fs.Items))
		for i, b := range fs.Branches {
			items[i] = b.Output
		}
		out = map[string]any{"items": items}
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

// branchOutput is a branch instance's output when it runs off the end of
// its list: its last step's, masked as records are; nil for any other
// instance.
func (r *runner) branchOutput() []byte {
	if r.st.Branch == nil || r.st.Branch.Last == "" {
		return nil
	}
	b, err := json.Marshal(r.st.Outputs[r.st.Branch.Last])
	if err != nil {
		return nil
	}
	return r.maskJSON(b)
}
