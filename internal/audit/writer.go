package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowgate/flowgate/internal/store"
)

// Options tune a Writer. The zero value is a working, enabled writer with
// the defaults below.
type Options struct {
	// Disabled makes Record a no-op and starts nothing; set it from
	// auth.audit_log being false.
	Disabled bool
	// QueueSize bounds the events waiting to be written. Default 8192:
	// at the 10,000 events/s the token endpoint must sustain, close to a
	// second of traffic, while a healthy database drains it in
	// milliseconds.
	QueueSize int
	// MaxBatch bounds the events in one AppendAudit transaction. Default
	// 512.
	MaxBatch int
	// CommitDelay is how long the writer lets events gather before a
	// commit when it is busy, that is when events arrived while it was
	// writing the previous batch; an event arriving at an idle writer is
	// written at once. Default 5ms; negative means never wait. Waiting
	// turns a stream of small commits into few large ones (each commit
	// costs a WAL write on SQLite, a round trip on PostgreSQL), so the
	// writer uses a fraction of the CPU under load; it delays no request,
	// only the moment its events reach the database. The wait ends early
	// when the queue fills up or the writer is closed.
	CommitDelay time.Duration
	// FullWait is how long Record blocks when the queue is full before it
	// drops the event. Default 200ms; negative means never block. A full
	// queue means the database has stalled for about a second; waiting a
	// little rides out a hiccup without losing events, waiting long would
	// turn a database stall into an outage of every sign-in.
	FullWait time.Duration
	// Retries is how many times a failed batch is tried again with a
	// growing backoff. After that the writer goes on trying it at the
	// last backoff (at most 5 s) until it is written, so the events of a
	// database outage are written when it ends; only Close gives a failing
	// batch up. Default 3.
	Retries int
	// RetryBackoff is the wait before the first retry; it doubles on each
	// retry after. Default 100ms.
	RetryBackoff time.Duration
	// WriteTimeout bounds one AppendAudit call. Default 10s.
	WriteTimeout time.Duration
	// Registerer, when set, receives the writer's metrics (see Stats).
	Registerer prometheus.Registerer
}

func (o Options) withDefaults() Options {
	if o.QueueSize <= 0 {
		o.QueueSize = 8192
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	if o.CommitDelay == 0 {
		o.CommitDelay = 5 * time.Millisecond
	}
	if o.FullWait == 0 {
		o.FullWait = 200 * time.Millisecond
	}
	if o.Retries < 0 {
		o.Retries = 0
	} else if o.Retries == 0 {
		o.Retries = 3
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 100 * time.Millisecond
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	return o
}

// Stats are a Writer's counters since it was created.
type Stats struct {
	// Written counts events committed to the store.
	Written uint64
	// Batches counts successful AppendAudit calls (group commits).
	Batches uint64
	// WriteErrors counts failed AppendAudit attempts, retries included.
	WriteErrors uint64
	// Dropped counts events Record refused: queue full past FullWait, or
	// the writer closed.
	Dropped uint64
	// Lost counts events accepted but never written: their batch was
	// still failing when Close gave it up, or Close ran out of time.
	Lost uint64
	// Queued is the number of events waiting now.
	Queued int
}

// Writer writes audit events to the store with group commit: Record puts an
// event in a bounded queue and returns; one background goroutine takes
// everything queued (up to MaxBatch) and writes it with one AppendAudit
// call, then repeats. When idle an event is written at once; under load the
// events that arrive during one commit form the next batch, so batches grow
// with the load and the number of transactions does not.
//
// Delivery is at least once: a batch whose commit succeeded but reported an
// error is written again by the retry. A nil *Writer is a valid disabled
// writer.
type Writer struct {
	st       store.AuditLog
	logger   *slog.Logger
	opts     Options
	disabled bool

	// mu orders Record against Close: Record enqueues under the read lock,
	// Close sets closed under the write lock. Once Close holds it no event
	// can slip into the queue after the final drain, so none is stranded.
	mu     sync.RWMutex
	closed bool

	queue     chan store.AuditEvent
	full      chan struct{} // Record found the queue full: end a CommitDelay wait
	stop      chan struct{} // closed by Close: drain and exit
	stopOnce  sync.Once
	done      chan struct{} // closed when the goroutine has exited
	runCtx    context.Context
	cancelRun context.CancelFunc

	written, batches, writeErrors, dropped, lost atomic.Uint64
	lastDropLog                                  atomic.Int64 // unix nanoseconds
	// writeErr is the error of the last AppendAudit attempt when it
	// failed, nil once one succeeds: see Healthy.
	writeErr atomic.Pointer[error]
}

// NewWriter starts a writer on st. With opts.Disabled, or a nil st, it
// returns a writer whose Record does nothing. Call Close to flush and stop
// it. Metric registration failing (a second writer on one registry) is
// logged, not fatal: auditing matters more than its metrics.
func NewWriter(st store.AuditLog, logger *slog.Logger, opts Options) *Writer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts = opts.withDefaults()
	w := &Writer{st: st, logger: logger, opts: opts}
	if opts.Disabled || st == nil {
		w.disabled = true
		return w
	}
	w.queue = make(chan store.AuditEvent, opts.QueueSize)
	w.full = make(chan struct{}, 1)
	w.stop = make(chan struct{})
	w.done = make(chan struct{})
	// The writes outlive any request; only Close running out of time
	// cancels them.
	w.runCtx, w.cancelRun = context.WithCancel(context.Background())
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(newCollector(w)); err != nil {
			logger.Error("audit: metrics not registered", "error", err)
		}
	}
	go w.run()
	return w
}

// Enabled reports whether Record writes anything.
func (w *Writer) Enabled() bool { return w != nil && !w.disabled }

// Record sanitizes e (see Sanitize; Time is taken now when zero, so it is
// the time of the event, not of the write) and queues it. It does not wait
// for the database. When the queue is full it blocks up to
// Options.FullWait, then drops the event, counts it and logs a warning
// (at most one per second). ctx is used for logging only: a client hanging
// up must not cancel the record of what it did.
func (w *Writer) Record(ctx context.Context, e store.AuditEvent) {
	if w == nil || w.disabled {
		return
	}
	e = Sanitize(e)
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.drop(ctx, "writer closed")
		return
	}
	select {
	case w.queue <- e:
		return
	default:
	}
	// The writer may be waiting for a batch to gather: it must write now.
	select {
	case w.full <- struct{}{}:
	default:
	}
	if w.opts.FullWait < 0 {
		w.drop(ctx, "queue full")
		return
	}
	t := time.NewTimer(w.opts.FullWait)
	defer t.Stop()
	select {
	case w.queue <- e:
	case <-t.C:
		w.drop(ctx, "queue full")
	}
}

// drop counts a refused event and warns, rate-limited so that an overload
// does not also flood the log.
func (w *Writer) drop(ctx context.Context, reason string) {
	n := w.dropped.Add(1)
	now := time.Now().UnixNano()
	last := w.lastDropLog.Load()
	if now-last < int64(time.Second) || !w.lastDropLog.CompareAndSwap(last, now) {
		return
	}
	w.logger.WarnContext(ctx, "audit: event dropped", "reason", reason, "dropped_total", n)
}

// Healthy reports whether events are being written: nil, or an error
// saying why not — the last write failed (the writer is retrying it), or
// the queue is full (the next Record would wait, then drop). Callers that
// must not act unaudited (sign-ins, the token endpoint) check it first and
// refuse while it fails; it turns nil again by itself with the first
// successful write. A disabled writer is always healthy. It costs two
// atomic loads.
func (w *Writer) Healthy() error {
	if w == nil || w.disabled {
		return nil
	}
	if err := w.writeErr.Load(); err != nil {
		return fmt.Errorf("audit events cannot be written: %w", *err)
	}
	if len(w.queue) == cap(w.queue) {
		return errors.New("audit queue is full")
	}
	return nil
}

// Stats returns the counters; the zero Stats for a disabled writer.
func (w *Writer) Stats() Stats {
	if w == nil || w.disabled {
		return Stats{}
	}
	return Stats{
		Written:     w.written.Load(),
		Batches:     w.batches.Load(),
		WriteErrors: w.writeErrors.Load(),
		Dropped:     w.dropped.Load(),
		Lost:        w.lost.Load(),
		Queued:      len(w.queue),
	}
}

// Close stops accepting events, writes everything queued and waits for it.
// If ctx ends first, the writes in progress are cancelled, what remains is
// counted as lost and the error says how many. Events recorded after Close
// are dropped. Close may be called more than once.
func (w *Writer) Close(ctx context.Context) error {
	if w == nil || w.disabled {
		return nil
	}
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	lostBefore := w.lost.Load()
	w.stopOnce.Do(func() { close(w.stop) })
	select {
	case <-w.done:
	case <-ctx.Done():
		w.cancelRun()
		<-w.done
		return fmt.Errorf("audit: close: %d events not written: %w", w.lost.Load()-lostBefore, ctx.Err())
	}
	w.cancelRun()
	if n := w.lost.Load() - lostBefore; n > 0 {
		return fmt.Errorf("audit: close: %d events not written", n)
	}
	return nil
}

// run is the one goroutine that writes. It blocks for the first event, then
// takes whatever else is already queued, so a lone event is written at once
// and a burst becomes one batch. When events arrived during the previous
// write (the writer is busy), it first lets the batch gather for up to
// CommitDelay.
func (w *Writer) run() {
	defer close(w.done)
	batch := make([]store.AuditEvent, 0, w.opts.MaxBatch)
	busy := false
	for {
		select {
		case e := <-w.queue:
			if busy {
				w.gather()
			}
			batch = w.fill(append(batch[:0], e))
			w.write(batch)
			busy = len(w.queue) > 0
		case <-w.stop:
			// Close holds no more Records back: what is queued now is
			// everything there will be.
			for {
				batch = w.fill(batch[:0])
				if len(batch) == 0 {
					return
				}
				w.write(batch)
			}
		}
	}
}

// gather waits up to CommitDelay for events to queue up, ending early when
// a batch is already there, when Record finds the queue full, or on Close.
// It sleeps rather than receives, so the events arriving meanwhile do not
// each wake the writer.
func (w *Writer) gather() {
	if w.opts.CommitDelay <= 0 {
		return
	}
	select {
	case <-w.full: // a signal from before this wait; the length says now
	default:
	}
	// One event is already taken: MaxBatch-1 more make a full batch.
	if n := len(w.queue); n >= w.opts.MaxBatch-1 || n == cap(w.queue) {
		return
	}
	t := time.NewTimer(w.opts.CommitDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-w.full:
	case <-w.stop:
	}
}

// stopping reports whether Close has been called.
func (w *Writer) stopping() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// stopIfRetried is the stop channel once a batch has had its Retries, so
// that Close ends the endless retrying of a failing batch; before that it
// is nil (never ready), and Close waits for the retries as it always did.
func (w *Writer) stopIfRetried(attempts int) <-chan struct{} {
	if attempts > w.opts.Retries {
		return w.stop
	}
	return nil
}

// fill appends queued events to batch without blocking, up to MaxBatch.
func (w *Writer) fill(batch []store.AuditEvent) []store.AuditEvent {
	for len(batch) < w.opts.MaxBatch {
		select {
		case e := <-w.queue:
			batch = append(batch, e)
		default:
			return batch
		}
	}
	return batch
}

// maxRetryBackoff bounds the wait between two attempts at a failing
// batch: how long after a database outage ends the writer may take to
// notice and become healthy again.
const maxRetryBackoff = 5 * time.Second

// write stores one batch, retrying with exponential backoff; past
// Options.Retries it keeps retrying until the batch is written or the
// writer is closing. A failed attempt makes the writer unhealthy, a
// successful one healthy. The log line on giving up names counts and the
// error only, not the events: they are not secrets, but a log is read by
// more people than the audit table.
func (w *Writer) write(batch []store.AuditEvent) {
	backoff := w.opts.RetryBackoff
	attempts := 0
	var err error
retry:
	for {
		attempts++
		ctx, cancel := context.WithTimeout(w.runCtx, w.opts.WriteTimeout)
		err = w.st.AppendAudit(ctx, batch...)
		cancel()
		if err == nil {
			w.written.Add(uint64(len(batch)))
			w.batches.Add(1)
			if w.writeErr.Swap(nil) != nil {
				w.logger.Info("audit: events are written again", "events", len(batch), "attempts", attempts)
			}
			return
		}
		w.writeErrors.Add(1)
		failed := err // err changes with the next attempt; Healthy reads this
		w.writeErr.Store(&failed)
		if w.runCtx.Err() != nil || attempts > w.opts.Retries && w.stopping() {
			break
		}
		if attempts <= w.opts.Retries {
			w.logger.Warn("audit: write failed, retrying", "events", len(batch), "attempt", attempts, "retry_in", backoff, "error", err)
		} else if attempts == w.opts.Retries+1 {
			w.logger.Error("audit: write keeps failing; retrying until it works", "events", len(batch), "attempts", attempts, "retry_every", backoff, "error", err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-w.runCtx.Done():
			t.Stop()
		case <-w.stopIfRetried(attempts):
			t.Stop()
			break retry
		}
		if attempts <= w.opts.Retries {
			backoff = min(backoff*2, max(maxRetryBackoff, w.opts.RetryBackoff))
		}
	}
	w.lost.Add(uint64(len(batch)))
	if errors.Is(err, context.Canceled) && w.runCtx.Err() != nil {
		err = errors.New("close timed out")
	}
	w.logger.Error("audit: events not written", "events", len(batch), "attempts", attempts, "error", err)
}
