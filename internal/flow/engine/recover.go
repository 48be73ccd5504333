package engine

import (
	"context"
	"errors"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// recoverBatch is how many overdue wakes or expired leases one pass claims
// before looking again.
const recoverBatch = 200

// recoverLoop is how every server finds work nobody else will do: waits
// whose deadline passed without a wake (the server that set the timer
// died, the wake job is lost or stuck) and running instances whose
// owner's lease ran out. It scans the store itself, at once when the
// engine starts and then every Sweep, and claims what it finds with the
// store's conditional claim, which is the only fence needed: two servers
// scanning at once, or a scan racing a wake job or a local timer, leave
// one winner and the others' claims change nothing. Nothing here waits on
// the job queue's leader election or on a job's state, so a crash at any
// moment leaves nothing that stops recovery.
func (e *Engine) recoverLoop() {
	defer e.runs.Done()
	if e.soleServer() {
		e.endPredecessorLeases(e.ctx)
	}
	e.recoverOnce(e.ctx)
	e.every(e.sweep, func() { e.recoverOnce(e.ctx) })
}

// soleServer tells whether this server is the only one on its database: a
// SQLite file serves one server.
func (e *Engine) soleServer() bool { return e.st.Backend() == "sqlite" }

// recoverOnce claims and runs every overdue wait and every instance whose
// lease expired, as of now. A full batch is followed by another, unless
// none of it could be resumed (the same rows would come back at once).
func (e *Engine) recoverOnce(ctx context.Context) {
	for {
		wakes, err := e.st.OverdueWakes(ctx, e.now(), recoverBatch)
		if err != nil {
			e.logRecoverErr("listing overdue waits", err)
			break
		}
		failed := 0
		for _, w := range wakes {
			if !e.resumeFound(ctx, w.InstanceID, w.Seq) {
				failed++
			}
		}
		if len(wakes) < recoverBatch || failed == len(wakes) || e.stopping.Load() {
			break
		}
	}
	for {
		ids, err := e.st.ExpiredLeases(ctx, e.now(), recoverBatch)
		if err != nil {
			e.logRecoverErr("listing expired leases", err)
			return
		}
		if len(ids) > 0 {
			e.log.Info("flow engine: taking over instances whose server stopped", "count", len(ids))
		}
		failed := 0
		for _, id := range ids {
			if !e.resumeFound(ctx, id, 0) {
				failed++
			}
		}
		if len(ids) < recoverBatch || failed == len(ids) || e.stopping.Load() {
			return
		}
	}
}

// resumeFound resumes an instance a scan found and tells whether that
// went through (or someone else had it first).
func (e *Engine) resumeFound(ctx context.Context, id string, seq int) bool {
	err := e.resume(ctx, id, seq)
	if err != nil && !errors.Is(err, ErrStopping) {
		e.log.Warn("flow engine: resuming an instance failed", "instance", id, "err", err)
	}
	return err == nil
}

func (e *Engine) logRecoverErr(what string, err error) {
	if e.ctx.Err() == nil {
		e.log.Warn("flow engine: "+what, "err", err)
	}
}

// endPredecessorLeases ends, at start, the leases of running instances
// owned by anyone else. On a database that serves one server, anyone else
// is an earlier process of this server, gone, so its instances need not
// wait for their leases to run out: the first pass takes them over.
func (e *Engine) endPredecessorLeases(ctx context.Context) {
	// Every running instance: no lease reaches a day ahead. (Through the
	// leases' index, unlike a listing by status.)
	ids, err := e.st.ExpiredLeases(ctx, e.now().Add(24*time.Hour), store.MaxLimit)
	if err != nil {
		e.logRecoverErr("listing running instances", err)
		return
	}
	owners := map[string]bool{}
	for _, id := range ids {
		in, err := e.st.GetInstance(ctx, id)
		if err != nil {
			e.logRecoverErr("reading a running instance", err)
			continue
		}
		if in.Owner != "" && in.Owner != e.owner {
			owners[in.Owner] = true
		}
	}
	// A second ago, so that the pass that follows sees them expired
	// whatever the clock's resolution.
	ended := e.now().Add(-time.Second)
	for owner := range owners {
		if _, err := e.st.ExtendLeases(ctx, owner, ended); err != nil {
			e.logRecoverErr("ending a stopped server's leases", err)
		}
	}
}
