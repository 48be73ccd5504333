package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/store"
)

// Task deadlines ride on the instance's own wake: a task with due, remind
// or escalate parks the instance with a wake at its next deadline event,
// in the commit that opens the task, exactly like a wait step. So they are
// as durable as waits (the wake time is on the instance row, which every
// server's recovery scan reads) and fire once across servers (the claim of
// the parked instance is the fence). When the wake comes, the server
// claims the instance, does what is due (escalation, reminder) and parks
// it again at the next event in one commit, or, when the due time passed
// and the task has on_due, closes the task with the action "timeout" and
// runs on from on_due.

// deadlineState is what is left to do around a task's due time.
type deadlineState struct {
	// Seq is the task's step record; the state applies while the
	// instance is parked there.
	Seq        int       `json:"seq"`
	DueAt      time.Time `json:"due_at,omitzero"`
	RemindAt   time.Time `json:"remind_at,omitzero"`
	EscalateAt time.Time `json:"escalate_at,omitzero"`
	// OnDue: the due time closes the task (the step has on_due).
	OnDue     bool `json:"on_due,omitempty"`
	Reminded  bool `json:"reminded,omitempty"`
	Escalated bool `json:"escalated,omitempty"`
}

// newDeadline computes a task's deadline events as it opens at start;
// nil when it has none.
func newDeadline(d *flow.Deadline, start time.Time, env *flow.Env) (*deadlineState, error) {
	if d == nil {
		return nil, nil
	}
	due, err := d.DueAt(start, env)
	if err != nil {
		return nil, fmt.Errorf("due: %w", err)
	}
	dl := &deadlineState{DueAt: due, OnDue: d.OnDue != "" && !due.IsZero()}
	if d.Remind > 0 && !due.IsZero() {
		dl.RemindAt = due.Add(-d.Remind)
	}
	if d.Escalate != nil {
		dl.EscalateAt = start.Add(d.Escalate.After).UTC()
	}
	return dl, nil
}

// next is the time of the next event still to happen; zero when none is.
func (d *deadlineState) next() time.Time {
	if d == nil {
		return time.Time{}
	}
	var at time.Time
	consider := func(t time.Time, done bool) {
		if !done && !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	consider(d.EscalateAt, d.Escalated)
	consider(d.RemindAt, d.Reminded)
	consider(d.DueAt, !d.OnDue)
	return at
}

// parkOnTask commits the instance as waiting on its task, unowned, with a
// wake at the task's next deadline event if it has one.
func (r *runner) parkOnTask(ctx context.Context) error {
	r.inst.Status = store.StatusWaiting
	r.inst.Owner = ""
	r.inst.LeaseUntil = time.Time{}
	at := r.st.Deadline.next()
	if !at.IsZero() {
		r.wake = &store.Wake{InstanceID: r.inst.ID, Seq: r.inst.Seq, At: at}
	}
	if err := r.commit(ctx); err != nil {
		return err
	}
	if !at.IsZero() {
		r.e.wakeLocally(r.inst.ID, r.inst.Seq, at)
	}
	r.e.notify(r.inst.ID)
	return errStop
}

// parkedOnTask tells whether a claimed instance is parked at a task step
// (its deadline woke it, or a takeover found it between the claim and the
// commit of a deadline pass): resuming it must not open the task again.
func (r *runner) parkedOnTask() (*flow.Step, bool) {
	step, ok := r.def.Step(r.inst.CurrentStep)
	if !ok || step.Type != flow.TypeTask || r.st.Parked == nil || r.st.Parked.Seq != r.inst.Seq {
		return nil, false
	}
	return step, true
}

// runDeadline does what is due of the task's deadline events as of now,
// then parks the instance again, or runs on from on_due.
func (r *runner) runDeadline(ctx context.Context, step *flow.Step) error {
	now := r.e.now()
	dl := r.st.Deadline
	task, found, err := r.e.parkedTask(ctx, r.inst, step.ID)
	if err != nil {
		return err
	}
	if dl != nil && found {
		if !dl.Escalated && !dl.EscalateAt.IsZero() && !now.Before(dl.EscalateAt) {
			dl.Escalated = true
			add, err := step.Task.Deadline.Escalate.Resolve(&r.env)
			if err != nil {
				// The task stays with its assignees; the failure is the
				// flow's, so it is logged rather than retried for ever.
				r.e.log.Warn("flow engine: task escalation: assignees", "instance", r.inst.ID, "step", step.ID, "err", r.maskText(err.Error()))
			} else {
				merged := slices.Clone(task.Assignees)
				var added []string
				for _, a := range add {
					if !slices.Contains(merged, a) {
						merged = append(merged, a)
						added = append(added, a)
					}
				}
				r.esc = &store.TaskEscalation{Serial: task.Serial, Assignees: merged}
				r.taskNotice(ctx, store.MailTaskEscalated, added, 0, task.Serial)
				task.Assignees = merged
			}
		}
		if !dl.Reminded && !dl.RemindAt.IsZero() && !now.Before(dl.RemindAt) {
			dl.Reminded = true
			// Past due already (a late wake), a task with on_due closes
			// now: a reminder would only confuse.
			if closing := dl.OnDue && !now.Before(dl.DueAt); !closing {
				r.taskNotice(ctx, store.MailTaskReminder, task.Assignees, 0, task.Serial)
			}
		}
		if dl.OnDue && !now.Before(dl.DueAt) {
			next := step.Task.Deadline.OnDue
			out := map[string]any{"action": flow.TimeoutAction, "by": "", "data": map[string]any{}}
			r.pending = append(r.pending, r.parkedRecord(step, store.StepCompleted, out))
			r.setOutput(step, out)
			r.act = &store.TaskAct{Serial: task.Serial, Action: flow.TimeoutAction, Data: []byte("{}"), At: now}
			r.inst.CurrentStep = next
			r.inst.Status = store.StatusRunning
			r.inst.Owner = r.e.owner
			if err := r.commit(ctx); err != nil {
				return err
			}
			r.start()
			return nil
		}
	}
	err = r.parkOnTask(ctx)
	if err == errStop {
		return nil
	}
	return err
}

// parkedTask finds the open task an instance is parked on at step.
func (e *Engine) parkedTask(ctx context.Context, inst store.Instance, stepID string) (store.Task, bool, error) {
	cursor := ""
	for {
		tasks, next, err := e.st.ListTasks(ctx, store.TaskFilter{All: true, InstanceID: inst.ID, Status: store.TaskOpen},
			store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return store.Task{}, false, err
		}
		for _, t := range tasks {
			if t.StepID == stepID && t.Seq == inst.Seq && t.Type == store.TaskTypeTask {
				return t, true, nil
			}
		}
		if next == "" {
			return store.Task{}, false, nil
		}
		cursor = next
	}
}
