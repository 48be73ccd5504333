// Package engine runs flow instances durably (docs/flows.md): it records
// every step in the store before the next one has an effect, hands what
// must wait (timers, HTTP retries) to the job queue in the same
// transaction, runs what can run now at once, on the server that recorded
// the step before it, and finds in the store what a dead server left
// behind.
//
// The engine sees the store through Store (only what it uses) and the job
// queue through Queue: the backend builds the queue on its own database
// (River, with the driver that fits its pool), and the store inserts the
// wake a commit asks for in that commit's transaction. The engine only
// starts the queue's worker with the function that resumes an instance,
// and stops it.
//
// How an instance moves:
//
//   - A server that starts an instance (or resumes it: a wake, a task
//     action, a takeover) owns it: the instance row names the server and a
//     lease, which a heartbeat extends while the server lives. Every write
//     of progress is fenced by that ownership (store.ErrLeaseLost), so two
//     servers never both record a step of one instance.
//   - Steps without effects outside the instance (set, switch, return,
//     fail) run in memory; their records are committed together with the
//     next durable point: the start of an http step, a wait, a task, or the
//     end. A crash before that commit loses nothing that was observable,
//     and the steps run again. An http step's start is committed before the
//     request is sent and its end right after the answer.
//   - A wait or an HTTP retry commits the instance as waiting with a wake
//     job scheduled in the same transaction. The server also sets a local
//     timer, so a short wait ends on time without a queue poll; whichever
//     claims the instance first runs it (ClaimInstance is atomic), the
//     other finds it already moved on.
//   - A task commits the instance as waiting with a worklist item; an
//     action claims it back and the acting server runs on.
//   - A server that dies leaves running instances whose lease runs out,
//     and waits whose timers died with it. Every server scans the store for
//     both, at start and every Sweep (recoverLoop), and claims what it
//     finds; the claim is the fence, so the scan needs no leader and no
//     job. A server on SQLite is the only one, so at start it ends its
//     dead predecessor's leases at once. A step that was mid-flight is
//     recorded as interrupted and runs again as a new attempt (with the
//     same Idempotency-Key for http steps).
package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/egress"
	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/metrics"
	"github.com/flowgate/flowgate/internal/tracing"
)

// Defaults of Config.
const (
	DefaultLease        = 10 * time.Second
	DefaultSweep        = 2 * time.Second
	DefaultInvokeWait   = 30 * time.Second
	defaultFlowCacheTTL = time.Second
	// maxPureSteps bounds the steps an instance runs between two commits:
	// a run of steps without effects outside the instance (a switch
	// looping back on itself) is committed every so many steps, so no
	// commit grows without bound while the step budget runs down.
	maxPureSteps = 1000
	// maxResponseBytes bounds an http step's response body.
	maxResponseBytes = 1 << 20
	// DefaultMaxSteps is Config.MaxSteps when zero.
	DefaultMaxSteps = 10000
	// DefaultMaxVars is Config.MaxVars when zero.
	DefaultMaxVars = 1 << 20
	// MaxDepth is the longest chain of instances started by instances
	// (an http step calling Flowgate's own start or invoke API): a start
	// that would be deeper is refused, so a flow that starts itself stops
	// there instead of multiplying without bound.
	MaxDepth = 8
	// DepthHeader carries the depth of the instance that sent an http
	// step's request. Flowgate's start and invoke APIs read it: the
	// instance they start is one deeper.
	DepthHeader = "Flowgate-Depth"
)

// Errors the API maps to statuses.
var (
	// ErrForbidden: the caller may not start the flow or touch the object.
	ErrForbidden = errors.New("not allowed")
	// ErrEnded: the instance has already ended.
	ErrEnded = errors.New("instance has ended")
	// ErrTaskClosed: someone already acted on the task.
	ErrTaskClosed = errors.New("task is no longer open")
	// ErrNoAction: the task has no such action.
	ErrNoAction = errors.New("no such action")
	// ErrStopping: the engine is shutting down.
	ErrStopping = errors.New("engine is shutting down")
	// ErrTooDeep: the start would make a chain of instances started by
	// instances longer than MaxDepth.
	ErrTooDeep = errors.New("too many instances deep")
	// ErrVarsTooLarge: a step or a task action's data would make the
	// instance's vars larger than Config.MaxVars.
	ErrVarsTooLarge = errors.New("vars_too_large")
)

// Config is what New needs.
type Config struct {
	// Store holds flows, instances and tasks. Required.
	Store Store
	// Queue delivers the wakes the store schedules; required unless
	// NoQueue. Build it on the same store (store/backend: OpenQueue).
	Queue Queue
	// Logger receives the engine's logs; slog.Default() when nil.
	Logger *slog.Logger
	// Egress says where http steps may connect; egress.Default() when nil.
	Egress *egress.Policy
	// Lease is how long an owner's claim on an instance lasts without a
	// heartbeat; DefaultLease when zero. A dead server's instances are
	// taken over after at most Lease plus Sweep.
	Lease time.Duration
	// Sweep is how often every server looks for expired leases and
	// overdue waits; DefaultSweep when zero.
	Sweep time.Duration
	// InvokeWait is how long Invoke waits for an instance to end before
	// answering with the instance; DefaultInvokeWait when zero.
	InvokeWait time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Vault gives the OAuth steps and http's auth: their tokens; nil
	// means no OAuth connectors (those steps answer status codes saying
	// so).
	Vault Vault
	// PublicURL is the server's public base URL, for the connect links of
	// oauth_user_login steps; relative links when empty.
	PublicURL string
	// NoQueue runs the engine without background work: no job queue
	// worker (Queue, if set, is not started), no lease heartbeat, no
	// recovery scan. For commands that deploy flows but do not run them.
	// Wakes are still scheduled, by the queue opened on the store.
	NoQueue bool
	// Audit records deploys, task actions and cancels with who made them;
	// nil records nothing.
	Audit audit.Recorder
	// MaxSteps is how many steps one instance may run over its life
	// (every attempt of a step counts, so do loops through switch); the
	// instance fails with step_budget_exhausted at the next one.
	// DefaultMaxSteps when zero.
	MaxSteps int
	// MaxVars is the largest, in bytes of JSON, an instance's vars may
	// grow: a set step that makes them larger fails, a task action that
	// would is refused (ErrVarsTooLarge). DefaultMaxVars when zero.
	MaxVars int64
	// Metrics counts instances, steps, tasks and wake lag; nil counts
	// nothing.
	Metrics *metrics.Metrics
	// Tracing makes every step a span and every http step's request a
	// client span carrying traceparent; nil is off.
	Tracing *tracing.Tracing
	// Mail turns on the email step and task notices; nil: email is off
	// (an email step fails saying so).
	Mail *MailConfig
	// Getenv reads the server's environment, for webhook secrets written
	// ${NAME}; os.LookupEnv when nil.
	Getenv func(name string) (string, bool)
	// DeclaredServers are the OAuth servers a configuration file
	// declares, which deploys accept besides those in the store: an admin
	// command reads the file without writing its servers to the store.
	DeclaredServers []string
}

// Engine runs instances. It is safe for concurrent use.
type Engine struct {
	st     Store
	log    *slog.Logger
	client *http.Client
	lease  time.Duration
	sweep  time.Duration
	wait   time.Duration
	now    func() time.Time
	owner  string

	// q is started unless NoQueue; nil then.
	q Queue

	vault     Vault
	metrics   *metrics.Metrics
	tracing   *tracing.Tracing
	publicURL string
	audit     audit.Recorder
	declared  []string
	getenv    func(string) (string, bool)
	mail      *MailConfig
	maxSteps  int
	maxVars   int64

	// ctx lives as long as the engine; runs use it instead of the
	// request's context, so an instance goes on when its caller hangs up.
	ctx      context.Context
	cancel   context.CancelFunc
	runs     sync.WaitGroup
	stopping atomic.Bool

	flows flowCache

	// schedStart is when this engine's schedule loop began: scheduled
	// times before it that nobody claimed were missed.
	schedStart time.Time

	// hbDone ends the background loops (every): the heartbeat and the
	// recovery loop.
	hbDone   chan struct{}
	hbClosed sync.Once

	mu      sync.Mutex
	waiters map[string][]chan struct{}
	timers  map[*time.Timer]struct{}
}

// New builds an engine over cfg.Store and, unless cfg.NoQueue, starts the
// queue worker, the lease heartbeat and the recovery scan.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Store == nil {
		return nil, errors.New("flow engine: a store is required")
	}
	if cfg.Queue == nil && !cfg.NoQueue {
		return nil, errors.New("flow engine: a job queue is required to run instances")
	}
	e := &Engine{
		st:       cfg.Store,
		log:      cfg.Logger,
		client:   newHTTPClient(cfg.Egress, cfg.Tracing),
		lease:    cfg.Lease,
		sweep:    cfg.Sweep,
		wait:     cfg.InvokeWait,
		now:      cfg.Now,
		vault:    cfg.Vault,
		metrics:  cfg.Metrics,
		tracing:  cfg.Tracing,
		audit:    cfg.Audit,
		declared: cfg.DeclaredServers,
		getenv:   cfg.Getenv,
		mail:     cfg.Mail,
		maxSteps: cfg.MaxSteps,
		maxVars:  cfg.MaxVars,
		// A trailing slash would double in every connect link.
		publicURL: strings.TrimRight(cfg.PublicURL, "/"),
		waiters:   make(map[string][]chan struct{}),
		timers:    make(map[*time.Timer]struct{}),
		hbDone:    make(chan struct{}),
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.lease <= 0 {
		e.lease = DefaultLease
	}
	if e.sweep <= 0 {
		e.sweep = DefaultSweep
	}
	if e.wait <= 0 {
		e.wait = DefaultInvokeWait
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.getenv == nil {
		e.getenv = os.LookupEnv
	}
	if e.maxSteps <= 0 {
		e.maxSteps = DefaultMaxSteps
	}
	if e.maxVars <= 0 {
		e.maxVars = DefaultMaxVars
	}
	e.owner = newOwnerID()
	e.flows = flowCache{ttl: defaultFlowCacheTTL, now: e.now, latest: map[string]cachedLatest{}, versions: map[flowKey]*flow.Definition{}}
	e.ctx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))

	if !cfg.NoQueue {
		if err := cfg.Queue.Start(ctx, e.wake); err != nil {
			e.cancel()
			return nil, fmt.Errorf("flow engine: %w", err)
		}
		e.q = cfg.Queue
		e.schedStart = e.now()
		e.runs.Add(3)
		go e.heartbeat()
		go e.recoverLoop()
		go e.scheduleLoop()
	}
	return e, nil
}

// Owner is this engine's id in instances' owner column.
func (e *Engine) Owner() string { return e.owner }

// Close stops taking work, lets runs reach their next durable point
// (releasing the instance for takeover instead of starting a new http
// step), stops the queue and waits, until ctx ends.
func (e *Engine) Close(ctx context.Context) error {
	if !e.stopping.CompareAndSwap(false, true) {
		return nil
	}
	e.mu.Lock()
	for t := range e.timers {
		t.Stop()
	}
	e.mu.Unlock()
	var err error
	if e.q != nil {
		if serr := e.q.Stop(ctx); serr != nil {
			err = fmt.Errorf("flow engine: %w", serr)
		}
	}
	done := make(chan struct{})
	go func() {
		// The heartbeat ends with the context; runs end at their next
		// durable point.
		e.waitRuns()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("flow engine: runs still going at shutdown: %w", ctx.Err()))
	}
	e.cancel()
	return err
}

func (e *Engine) waitRuns() {
	// The heartbeat is one of the runs; stop it once the others are done
	// so their leases stay fresh until they release them.
	e.heartbeatStop()
	e.runs.Wait()
}

func newOwnerID() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "flowgate"
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// heartbeat keeps this server's leases alive.
func (e *Engine) heartbeat() {
	defer e.runs.Done()
	e.every(e.lease/4, func() {
		ctx, cancel := context.WithTimeout(e.ctx, e.lease/2)
		defer cancel()
		if _, err := e.st.ExtendLeases(ctx, e.owner, e.now().Add(e.lease)); err != nil {
			e.log.Warn("flow engine: extending leases", "err", err)
		}
	})
}

// every calls f every d until the engine stops its background loops.
func (e *Engine) every(d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.hbDone:
			return
		case <-t.C:
			f()
		}
	}
}

// heartbeatStop ends the heartbeat; Close calls it once the runs are done.
func (e *Engine) heartbeatStop() { e.hbClosed.Do(func() { close(e.hbDone) }) }

// notify wakes Invoke calls waiting on an instance.
func (e *Engine) notify(id string) {
	e.mu.Lock()
	ws := e.waiters[id]
	delete(e.waiters, id)
	e.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
}

func (e *Engine) waiter(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	e.mu.Lock()
	e.waiters[id] = append(e.waiters[id], ch)
	e.mu.Unlock()
	return ch, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		ws := e.waiters[id]
		for i, w := range ws {
			if w == ch {
				e.waiters[id] = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(e.waiters[id]) == 0 {
			delete(e.waiters, id)
		}
	}
}

// afterFunc runs f at t on this server unless the engine stops first.
func (e *Engine) afterFunc(at time.Time, f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping.Load() {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(max(at.Sub(e.now()), 0), func() {
		e.mu.Lock()
		delete(e.timers, t)
		e.mu.Unlock()
		f()
	})
	e.timers[t] = struct{}{}
}
