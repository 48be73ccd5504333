package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync"
)

// maxGroup bounds how many callers' writes share one transaction, so that
// a burst never holds the writer for long.
const maxGroup = 64

// errStoreClosed answers a write that arrives after Close.
var errStoreClosed = errors.New("store is closed")

// txWork is one caller's part of a write transaction. It may run twice
// (together with others, then alone: see groupCommitter.commit), so it
// writes only through tx and sets its results afresh on every run.
type txWork func(ctx context.Context, tx *sql.Tx) error

// groupCommitter runs the instance writes of concurrent callers as one
// transaction (group commit). SQLite writes one transaction at a time and
// every commit appends each page it changed to the write-ahead log: sixteen
// instances committed one by one write the instances table's last page
// sixteen times, together once, and take the writer's lock once. A caller
// waits for its own outcome: success only once the transaction holding its
// writes has committed.
type groupCommitter struct {
	db   *sql.DB
	jobs chan *txJob // unbuffered: a job handed over is always answered
	stop chan struct{}
	done chan struct{}
	once sync.Once // Store.Close may be called more than once
}

type txJob struct {
	work txWork
	err  chan error // buffered, one answer
}

func newGroupCommitter(db *sql.DB) *groupCommitter {
	g := &groupCommitter{db: db, jobs: make(chan *txJob), stop: make(chan struct{}), done: make(chan struct{})}
	go g.run()
	return g
}

// do runs work in a transaction shared with whatever other writes arrive
// meanwhile. ctx only decides whether work is handed over at all: once it
// is, it is written or refused as a whole, and the caller is told which,
// rather than leaving with the outcome unknown.
func (g *groupCommitter) do(ctx context.Context, work txWork) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j := &txJob{work: work, err: make(chan error, 1)}
	select {
	case g.jobs <- j:
	case <-g.done:
		return errStoreClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-j.err
}

func (g *groupCommitter) run() {
	defer close(g.done)
	batch := make([]*txJob, 0, maxGroup)
	for {
		select {
		case j := <-g.jobs:
			batch = append(batch[:0], j)
		case <-g.stop:
			return
		}
		// Whoever queued while the last transaction ran joins this one.
		// Yielding once first lets requests that are about to queue do
		// so: under load the groups grow from about two writes to five
		// (and each instance's share of the commit shrinks), at no cost
		// when the server is idle.
		runtime.Gosched()
	fill:
		for len(batch) < maxGroup {
			select {
			case j := <-g.jobs:
				batch = append(batch, j)
			default:
				break fill
			}
		}
		g.commit(batch)
		clear(batch)
	}
}

// commit writes batch in one transaction. If any part fails, nothing of
// the batch is kept and each part runs again in a transaction of its own,
// so that a failure (a conflict, a lost lease, an idempotency key seen
// before) is its caller's alone and the others are written. Such failures
// are rare; the second pass costs what writing one by one always did.
func (g *groupCommitter) commit(batch []*txJob) {
	// No caller's deadline applies to a transaction shared by others.
	ctx := context.Background()
	if len(batch) > 1 && g.together(ctx, batch) == nil {
		for _, j := range batch {
			j.err <- nil
		}
		return
	}
	for _, j := range batch {
		j.err <- runTx(ctx, g.db, j.work)
	}
}

func (g *groupCommitter) together(ctx context.Context, batch []*txJob) error {
	tx, err := g.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // no-op after Commit
	for _, j := range batch {
		if err := runWork(ctx, tx, j.work); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// close stops the committer once the batch in hand is answered; later
// writes get errStoreClosed.
func (g *groupCommitter) close() {
	g.once.Do(func() { close(g.stop) })
	<-g.done
}

// runTx runs work in a transaction of its own: committed if work succeeds,
// rolled back otherwise.
func runTx(ctx context.Context, db *sql.DB, work txWork) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // no-op after Commit
	if err := runWork(ctx, tx, work); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// runWork runs work, turning a panic into its caller's error: on the
// committer's goroutine a panic would stop every later write of the server,
// where in the caller's own it would have failed one request.
func runWork(ctx context.Context, tx *sql.Tx, work txWork) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("instance write failed: %v", r)
		}
	}()
	return work(ctx, tx)
}

// writeInstance runs an instance write: grouped with concurrent ones where
// the store groups them (Config.GroupCommit), in its own transaction
// otherwise.
func (s *Store) writeInstance(ctx context.Context, work txWork) error {
	if s.group != nil {
		return s.group.do(ctx, work)
	}
	return runTx(ctx, s.write, work)
}
