// Package jobqueue is the job queue that carries what must wait (wait
// deadlines, HTTP retry backoffs): River, on the store's own database, so a
// wake is inserted in the very transaction that parks its instance.
//
// The backends build it, since only they know which River driver fits the
// pool they opened (store/sqlite, store/postgres: OpenQueue). The store
// hands its commit transaction to ScheduleTx; the flow engine only starts
// and stops the worker, with the function that resumes an instance.
package jobqueue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/flowgate/flowgate/internal/store"
)

// Driver is a River driver whose transactions are the store's: both
// backends run the store's queries through database/sql.
type Driver = riverdriver.Driver[*sql.Tx]

// Resume is what a worker does with a due wake: resume the instance if it
// is still at w.Seq (0: a takeover, whatever its seq). The instance's row,
// not the job, is the truth, so a stale or duplicate wake must do nothing.
type Resume = func(ctx context.Context, w store.Wake) error

// Config is what New needs.
type Config struct {
	// Driver is River's driver over the store's write database.
	Driver Driver
	// Logger receives River's warnings and errors (its routine info logs
	// are dropped); slog.Default() when nil.
	Logger *slog.Logger
	// PollInterval is how often the worker looks for due jobs when the
	// driver cannot be notified of them; River's default when zero.
	PollInterval time.Duration
}

// Queue is River's client on the store's database. Its methods are safe
// for concurrent use.
type Queue struct {
	client *river.Client[*sql.Tx]
	// resume is set by Start, before River runs any job.
	resume Resume
}

// wakeArgs resume an instance parked at step record Seq.
type wakeArgs struct {
	InstanceID string `json:"instance_id"`
	Seq        int    `json:"seq"`
}

func (wakeArgs) Kind() string { return "flow_wake" }

// takeoverArgs and sweepArgs are jobs earlier versions queued (takeovers
// of expired leases, and a periodic lease sweep unique over its running
// state, which a crash while it ran left stuck for good). The engine's
// own recovery loop does both now; their workers stay so that leftover
// jobs finish quietly.
type takeoverArgs struct {
	InstanceID string `json:"instance_id"`
}

func (takeoverArgs) Kind() string { return "flow_takeover" }

type sweepArgs struct{}

func (sweepArgs) Kind() string { return "flow_sweep" }

// Migrate creates or upgrades River's tables. The caller serializes
// servers starting together where the database needs it (PostgreSQL).
func Migrate(ctx context.Context, driver Driver) error {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("job queue migrations: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("job queue migrations: %w", err)
	}
	return nil
}

// New builds the queue over tables Migrate has made. It can schedule at
// once; it works jobs only once started.
func New(cfg Config) (*Queue, error) {
	if cfg.Driver == nil {
		return nil, errors.New("job queue: a driver is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	q := &Queue{}
	workers := river.NewWorkers()
	river.AddWorker(workers, &wakeWorker{q: q})
	river.AddWorker(workers, &takeoverWorker{q: q})
	river.AddWorker(workers, &sweepWorker{})
	client, err := river.NewClient(cfg.Driver, &river.Config{
		Logger: slog.New(quietHandler{log.Handler()}),
		// Jobs only hand an instance to a runner; a minute is ample.
		JobTimeout:                  time.Minute,
		CompletedJobRetentionPeriod: time.Hour,
		MaxAttempts:                 25,
		Workers:                     workers,
		Queues:                      map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 20}},
		FetchPollInterval:           cfg.PollInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	q.client = client
	return q, nil
}

// ScheduleTx inserts a job that resumes w's instance at w.At, in tx: the
// wake exists exactly when the commit that asked for it does.
func (q *Queue) ScheduleTx(ctx context.Context, tx *sql.Tx, w store.Wake) error {
	_, err := q.client.InsertTx(ctx, tx, wakeArgs{InstanceID: w.InstanceID, Seq: w.Seq}, &river.InsertOpts{ScheduledAt: w.At})
	if err != nil {
		return fmt.Errorf("job queue: schedule wake: %w", err)
	}
	return nil
}

// Start works due jobs with resume until Stop or until ctx ends. It is
// called at most once.
func (q *Queue) Start(ctx context.Context, resume Resume) error {
	if resume == nil {
		return errors.New("job queue: start needs a resume function")
	}
	if q.resume != nil {
		return errors.New("job queue: already started")
	}
	q.resume = resume
	if err := q.client.Start(ctx); err != nil {
		return fmt.Errorf("job queue: start: %w", err)
	}
	return nil
}

// Stop waits for the jobs being worked, until ctx ends. A queue never
// started has nothing to stop.
func (q *Queue) Stop(ctx context.Context) error {
	if err := q.client.Stop(ctx); err != nil {
		return fmt.Errorf("job queue: stop: %w", err)
	}
	return nil
}

type wakeWorker struct {
	river.WorkerDefaults[wakeArgs]
	q *Queue
}

func (w *wakeWorker) Work(ctx context.Context, job *river.Job[wakeArgs]) error {
	// At is when the wake was due, so the engine can measure how late
	// the queue delivered it.
	return w.q.resume(ctx, store.Wake{InstanceID: job.Args.InstanceID, Seq: job.Args.Seq, At: job.ScheduledAt})
}

type takeoverWorker struct {
	river.WorkerDefaults[takeoverArgs]
	q *Queue
}

func (w *takeoverWorker) Work(ctx context.Context, job *river.Job[takeoverArgs]) error {
	return w.q.resume(ctx, store.Wake{InstanceID: job.Args.InstanceID})
}

type sweepWorker struct {
	river.WorkerDefaults[sweepArgs]
}

func (w *sweepWorker) Work(context.Context, *river.Job[sweepArgs]) error { return nil }

// quietHandler passes on River's warnings and errors only; its routine
// info logs (leadership, maintenance) would drown the server's own.
type quietHandler struct{ slog.Handler }

func (h quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}
func (h quietHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(a)}
}
func (h quietHandler) WithGroup(n string) slog.Handler { return quietHandler{h.Handler.WithGroup(n)} }
