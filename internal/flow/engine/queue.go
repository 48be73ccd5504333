package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/flowgate/flowgate/internal/store"
)

// queue is the River client that carries what must wait: wakes (wait
// deadlines, HTTP retry backoffs). River delivers them to any server, on
// time; the engine's tables stay the source of truth, and every job
// re-checks them (ClaimInstance) before acting, so a stale or duplicate
// job does nothing. Recovery after a crash does not depend on the queue:
// every server's recoverLoop finds overdue waits and expired leases in the
// store itself.
type queue struct {
	e       *Engine
	client  *river.Client[*sql.Tx]
	working bool
}

// wakeArgs resume an instance parked at step record Seq.
type wakeArgs struct {
	InstanceID string `json:"instance_id"`
	Seq        int    `json:"seq"`
}

func (wakeArgs) Kind() string { return "flow_wake" }

// takeoverArgs and sweepArgs are jobs earlier versions queued (takeovers
// of expired leases, and a periodic lease sweep unique over its running
// state, which a crash while it ran left stuck for good). recoverLoop does
// both now; their workers stay so that leftover jobs finish quietly.
type takeoverArgs struct {
	InstanceID string `json:"instance_id"`
}

func (takeoverArgs) Kind() string { return "flow_takeover" }

type sweepArgs struct{}

func (sweepArgs) Kind() string { return "flow_sweep" }

type sqlDBs interface{ WriteDB() *sql.DB }
type pgPool interface{ Pool() *pgxpool.Pool }

func newQueue(ctx context.Context, e *Engine, work bool) (*queue, error) {
	dbs, ok := e.st.(sqlDBs)
	if !ok {
		return nil, fmt.Errorf("flow engine: the %s store does not expose its database to the job queue", e.st.Backend())
	}
	var driver riverdriver.Driver[*sql.Tx]
	switch e.st.Backend() {
	case "sqlite":
		driver = riversqlite.New(dbs.WriteDB())
	case "postgres":
		p, ok := e.st.(pgPool)
		if !ok {
			return nil, errors.New("flow engine: the postgres store does not expose its pool")
		}
		// database/sql for jobs, so a job is inserted in the store's own
		// transaction; pgx only for LISTEN, so jobs start without a poll.
		driver = riverdatabasesql.NewWithPgxListener(dbs.WriteDB(), p.Pool())
	default:
		return nil, fmt.Errorf("flow engine: no job queue for the %s store", e.st.Backend())
	}
	if err := migrateQueue(ctx, driver, dbs.WriteDB(), e.st.Backend()); err != nil {
		return nil, err
	}
	q := &queue{e: e, working: work}
	cfg := &river.Config{
		Logger: slog.New(quietHandler{e.log.Handler()}),
		// Jobs only hand an instance to a runner; a minute is ample.
		JobTimeout:                  time.Minute,
		CompletedJobRetentionPeriod: time.Hour,
		MaxAttempts:                 25,
	}
	if work {
		workers := river.NewWorkers()
		river.AddWorker(workers, &wakeWorker{e: e})
		river.AddWorker(workers, &takeoverWorker{e: e})
		river.AddWorker(workers, &sweepWorker{})
		cfg.Workers = workers
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 20}}
		if e.st.Backend() == "sqlite" {
			// No LISTEN/NOTIFY: poll. Jobs are only timers, whose
			// precision the local timers already set.
			cfg.FetchPollInterval = 500 * time.Millisecond
		}
	}
	client, err := river.NewClient(driver, cfg)
	if err != nil {
		return nil, fmt.Errorf("flow engine: job queue: %w", err)
	}
	q.client = client
	return q, nil
}

// migrateQueue creates or upgrades River's tables. On PostgreSQL, River's
// migrations cannot share one transaction (a later one uses an enum value
// an earlier one adds), so a session advisory lock, held on a connection
// of its own, keeps servers starting together from racing.
func migrateQueue(ctx context.Context, driver riverdriver.Driver[*sql.Tx], db *sql.DB, backend string) error {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("flow engine: job queue migrations: %w", err)
	}
	if backend == "postgres" {
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("flow engine: job queue migrations: %w", err)
		}
		defer conn.Close()
		// Any constant shared by all Flowgate servers; distinct from
		// goose's lock.
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(7302201)"); err != nil {
			return fmt.Errorf("flow engine: job queue migrations: lock: %w", err)
		}
		defer func() {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(7302201)")
		}()
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("flow engine: job queue migrations: %w", err)
	}
	return nil
}

func (q *queue) start(ctx context.Context) error {
	if err := q.client.Start(ctx); err != nil {
		return fmt.Errorf("flow engine: start job queue: %w", err)
	}
	return nil
}

func (q *queue) stop(ctx context.Context) error {
	if !q.working {
		return nil
	}
	if err := q.client.Stop(ctx); err != nil {
		return fmt.Errorf("flow engine: stop job queue: %w", err)
	}
	return nil
}

// ScheduleTx implements store.Scheduler: the wake job is part of the
// store's transaction.
func (q *queue) ScheduleTx(ctx context.Context, tx any, w store.Wake) error {
	sqlTx, ok := tx.(*sql.Tx)
	if !ok {
		return fmt.Errorf("flow engine: schedule wake: want a *sql.Tx, got %T", tx)
	}
	_, err := q.client.InsertTx(ctx, sqlTx, wakeArgs{InstanceID: w.InstanceID, Seq: w.Seq}, &river.InsertOpts{ScheduledAt: w.At})
	if err != nil {
		return fmt.Errorf("flow engine: schedule wake: %w", err)
	}
	return nil
}

type wakeWorker struct {
	river.WorkerDefaults[wakeArgs]
	e *Engine
}

func (w *wakeWorker) Work(ctx context.Context, job *river.Job[wakeArgs]) error {
	return w.e.resume(ctx, job.Args.InstanceID, job.Args.Seq)
}

type takeoverWorker struct {
	river.WorkerDefaults[takeoverArgs]
	e *Engine
}

func (w *takeoverWorker) Work(ctx context.Context, job *river.Job[takeoverArgs]) error {
	return w.e.resume(ctx, job.Args.InstanceID, 0)
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
