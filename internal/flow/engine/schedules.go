package engine

import (
	"context"
	"errors"
	"time"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/store"
)

// Schedules. Every server runs the same loop and none is in charge: each
// pass reads the latest version of every flow, works out which of its
// schedules' times have come since the last one claimed, and starts an
// instance for each by creating it together with a claim of (flow,
// schedule, time), whose primary key lets one server's transaction through
// and refuses the others', writing nothing for them. So there is exactly
// one instance per scheduled time however many servers run, and a server
// that dies between the claim and the commit leaves neither.
//
// Times that passed before this server's loop began, and that nobody
// claimed, were missed while no server ran (a time that came while this
// server ran is late at worst, never missed): with missed: run_once the
// latest of them gets one instance, with skip none. A new version of a
// flow replaces its schedules from the moment it was deployed.

// maxScheduleScan bounds how many past times one pass walks per schedule,
// so a schedule every second after a month of downtime is not walked
// time by time; the latest missed time is found from the bound's end.
const maxScheduleScan = 10000

// scheduleLoop starts scheduled instances on time until the engine stops.
func (e *Engine) scheduleLoop() {
	defer e.runs.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.hbDone:
			return
		case <-timer.C:
		}
		next := e.schedulePass(e.ctx)
		// New deploys are seen within a sweep; a time due sooner is
		// waited for exactly.
		wait := e.sweep
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(e.now()), 0))
		}
		timer.Reset(wait)
	}
}

// schedulePass starts what is due and returns the next time any schedule
// is due (zero when none is).
func (e *Engine) schedulePass(ctx context.Context) time.Time {
	var next time.Time
	flows, err := e.st.LatestFlowVersions(ctx)
	if err != nil {
		e.logRecoverErr("listing flows for schedules", err)
		return time.Time{}
	}
	for _, fv := range flows {
		if e.stopping.Load() {
			break
		}
		def, err := e.Definition(ctx, fv.Name, fv.Version)
		if err != nil {
			e.logRecoverErr("reading a scheduled flow", err)
			continue
		}
		for _, s := range def.Schedules() {
			n := e.runSchedule(ctx, def, fv.DeployedAt, s)
			if !n.IsZero() && (next.IsZero() || n.Before(next)) {
				next = n
			}
		}
	}
	return next
}

// runSchedule starts the instances one schedule owes as of now and
// returns its next time.
func (e *Engine) runSchedule(ctx context.Context, def *flow.Definition, deployedAt time.Time, s *flow.Schedule) time.Time {
	now := e.now()
	last, err := e.st.LastScheduleClaim(ctx, def.Name, s.Key())
	if err != nil {
		e.logRecoverErr("reading a schedule's last time", err)
		return time.Time{}
	}
	bound := last
	if deployedAt.After(bound) {
		bound = deployedAt
	}
	var missed, due []time.Time
	t := s.Next(bound)
	for i := 0; !t.IsZero() && !t.After(now); i++ {
		if i == maxScheduleScan {
			// Jump near now; what lies between was missed all the same.
			if jump := s.Next(now.Add(-24 * time.Hour)); jump.After(t) {
				t = jump
			}
			i = 0
		}
		if t.Before(e.schedStart) {
			missed = append(missed[:0], t) // only the latest matters
		} else {
			due = append(due, t)
		}
		t = s.Next(t)
	}
	if len(missed) > 0 && s.Missed == flow.MissedRunOnce {
		e.startScheduled(ctx, def, s, missed[0], true)
	}
	for _, at := range due {
		e.startScheduled(ctx, def, s, at, false)
	}
	return t
}

// startScheduled starts the instance for one time of a schedule, unless
// another server (or an earlier pass) already did.
func (e *Engine) startScheduled(ctx context.Context, def *flow.Definition, s *flow.Schedule, at time.Time, catchUp bool) {
	caller := Caller{User: flow.User{ID: "schedule:" + def.Name, Kind: "schedule", Subject: def.Name, Roles: []string{}}}
	claim := &store.ScheduleClaim{Workflow: def.Name, Schedule: s.Key(), FireAt: at, Version: def.Version, CatchUp: catchUp}
	input, err := def.ValidateInput(s.Input)
	if err != nil {
		// Checked at deploy; a definition read back is the same one.
		e.log.Error("flow engine: a schedule's input is not valid", "workflow", def.Name, "err", err)
		return
	}
	st, err := e.start(ctx, def, input, caller, 1, startGuards{claim: claim})
	switch {
	case errors.Is(err, errGuardTaken), errors.Is(err, ErrStopping):
	case err != nil:
		e.log.Error("flow engine: a scheduled start failed", "workflow", def.Name, "schedule", s.Cron, "at", at, "err", err)
	default:
		e.log.Info("flow engine: scheduled instance started", "workflow", def.Name, "schedule", s.Cron,
			"at", at, "catch_up", catchUp, "instance", st.Instance.ID)
	}
}

// ScheduleInfo is one schedule of a flow with its next times, for the API
// and the flow's page.
type ScheduleInfo struct {
	Cron     string      `json:"schedule"`
	Timezone string      `json:"timezone"`
	Missed   string      `json:"missed"`
	Next     []time.Time `json:"next"`
}

// NextRuns lists the schedules of the latest version of a flow with their
// next n times (n at most 100).
func (e *Engine) NextRuns(ctx context.Context, name string, n int) ([]ScheduleInfo, error) {
	def, err := e.Definition(ctx, name, 0)
	if err != nil {
		return nil, err
	}
	return ScheduleInfos(def, e.now(), n), nil
}

// ScheduleInfos lists def's schedules with their next n times after now.
func ScheduleInfos(def *flow.Definition, now time.Time, n int) []ScheduleInfo {
	n = min(max(n, 1), 100)
	out := []ScheduleInfo{}
	for _, s := range def.Schedules() {
		info := ScheduleInfo{Cron: s.Cron, Timezone: s.Timezone, Missed: s.Missed}
		t := now
		for range n {
			t = s.Next(t)
			if t.IsZero() {
				break
			}
			info.Next = append(info.Next, t)
		}
		out = append(out, info)
	}
	return out
}
