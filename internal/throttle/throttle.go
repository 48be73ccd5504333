// Package throttle slows down repeated failed sign-ins. The login page and
// HTTP Basic on the APIs share it, and its state lives in the store, so a
// password guesser gains nothing by switching between them, between
// servers, or by waiting for a restart.
//
// The policy (docs/design.md, "Sign-in throttle"):
//
//   - Per (account, address) pair: the first 5 failures are free; after
//     the 5th, the next attempt must wait 1 s after the last failure, and
//     each further failure doubles the wait, up to 15 minutes. A pair is
//     forgotten 24 hours after its last failure, or at once by a
//     successful sign-in.
//   - Per address (password spraying): an address that has failed on 10
//     or more distinct accounts within 15 minutes is refused on every
//     account it has failed on, until that count drops below 10.
//   - A correct password from an address with no failures for that
//     account is never refused: nobody can lock an account out from
//     elsewhere, nor from the same address by failing on other accounts.
//
// Only failures write. A sign-in reads the pair and the address's count
// in one statement, and a successful one deletes its pair only when the
// pair had failures.
package throttle

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// The policy's numbers; see the package comment.
const (
	freeFailures  = 5
	firstDelay    = time.Second
	maxDelay      = 15 * time.Minute
	memory        = 24 * time.Hour
	sprayWindow   = 15 * time.Minute
	sprayAccounts = 10
	// maxAccount bounds the account key a caller stores for a failure.
	// Usernames are at most 64 characters; a longer name cannot exist,
	// and cutting it keeps a huge Basic header out of the table.
	maxAccount = 128
)

// Options tune a Throttle.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Throttle decides whether a sign-in may be checked, and records its
// outcome. It is safe for concurrent use.
type Throttle struct {
	st  store.SignInFailures
	now func() time.Time

	// inFlight holds the pairs with an attempt in flight in this process
	// (see pairGate), so it never outgrows the requests being served.
	mu       sync.Mutex
	inFlight map[pair]*pairGate
}

type pair struct{ account, addr string }

// pairGate orders the attempts of one pair in this process, so that a
// burst of concurrent guesses cannot all pass the check before the first
// failure is recorded. Attempts of a pair without failures share the
// gate (a busy HTTP Basic integration verifies in parallel), at most
// freeFailures at a time: together they can spend no more than the free
// failures. Attempts of a pair with failures hold it alone, after every
// shared attempt has recorded its outcome, so each sees all failures
// before it.
type pairGate struct {
	slots chan struct{} // one per attempt in flight, at most freeFailures
	rw    sync.RWMutex  // read: a pair without failures; write: with
	users int           // attempts holding or waiting; guarded by Throttle.mu
}

// New returns a throttle keeping its state in st.
func New(st store.SignInFailures, opts Options) *Throttle {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Throttle{st: st, now: opts.Now, inFlight: map[pair]*pairGate{}}
}

// Attempt is one sign-in between Begin and its outcome. Call exactly one
// of Fail or Succeed once the password has been checked, or End when it
// was not (refused, or the check could not run); End after either is a
// no-op, so `defer a.End()` is always right.
type Attempt struct {
	t         *Throttle
	p         pair
	g         *pairGate
	slot      bool // holds one of g.slots
	shared    bool // holds g.rw for reading
	exclusive bool // holds g.rw for writing
	// failures the pair had at Begin.
	failures int
	// Wait is how long the caller must wait before this pair may try
	// again; zero means go ahead and check the password. A refused
	// attempt is not counted as a failure.
	Wait time.Duration
}

// Begin starts a sign-in of account from addr (the client address
// without port): it waits its turn among the pair's attempts in this
// process (see pairGate), then reads the pair's state. An error means the
// state could not be read, or ctx ended while waiting: the caller should
// refuse the sign-in as unavailable rather than let it through
// unthrottled.
func (t *Throttle) Begin(ctx context.Context, account, addr string) (*Attempt, error) {
	if len(account) > maxAccount {
		account = strings.ToValidUTF8(account[:maxAccount], "")
	}
	a := &Attempt{t: t, p: pair{account, addr}}
	if err := a.enter(ctx); err != nil {
		return nil, fmt.Errorf("sign-in throttle: %w", err)
	}
	p, addrAccounts, now, err := a.read(ctx)
	if err == nil && p.Failures > 0 {
		// The pair has failed: wait for the shared attempts to record
		// their outcome, and read again.
		a.g.rw.RUnlock()
		a.shared = false
		a.g.rw.Lock()
		a.exclusive = true
		p, addrAccounts, now, err = a.read(ctx)
	}
	if err != nil {
		a.End()
		return nil, fmt.Errorf("sign-in throttle: %w", err)
	}
	a.failures = p.Failures
	a.Wait = wait(p, addrAccounts, now)
	return a, nil
}

func (a *Attempt) read(ctx context.Context) (store.SignInPair, int, time.Time, error) {
	now := a.t.now()
	p, n, err := a.t.st.GetSignInFailures(ctx, a.p.account, a.p.addr, now, now.Add(-sprayWindow))
	return p, n, now, err
}

// wait applies the policy to a pair's state and its address's count.
func wait(p store.SignInPair, addrAccounts int, now time.Time) time.Duration {
	if p.Failures == 0 {
		return 0
	}
	var d time.Duration
	if p.Failures >= freeFailures {
		d = max(0, p.LastFailedAt.Add(delayAfter(p.Failures)).Sub(now))
	}
	if addrAccounts >= sprayAccounts {
		// The count drops as the address's failures age out of the
		// window; the window is the longest that can take once the
		// address stops failing.
		d = max(d, sprayWindow)
	}
	return d
}

// delayAfter is how long after the last of n failures (n ≥ freeFailures)
// the next attempt must wait.
func delayAfter(n int) time.Duration {
	d := firstDelay
	for i := freeFailures; i < n && d < maxDelay; i++ {
		d *= 2
	}
	return min(d, maxDelay)
}

// Fail records a failed sign-in (wrong password, unknown or disabled
// account, a wrong second-factor code) and ends the attempt.
func (a *Attempt) Fail(ctx context.Context) error {
	defer a.End()
	now := a.t.now()
	if _, err := a.t.st.RecordSignInFailure(ctx, a.p.account, a.p.addr, now, now.Add(memory)); err != nil {
		return fmt.Errorf("sign-in throttle: %w", err)
	}
	return nil
}

// Succeed records a successful sign-in and ends the attempt: the pair's
// failures are forgotten. Nothing is written when it had none.
func (a *Attempt) Succeed(ctx context.Context) error {
	defer a.End()
	if a.failures == 0 {
		return nil
	}
	if err := a.t.st.ClearSignInFailures(ctx, a.p.account, a.p.addr); err != nil {
		return fmt.Errorf("sign-in throttle: %w", err)
	}
	return nil
}

// enter joins the pair's gate: a slot, then the shared lock.
func (a *Attempt) enter(ctx context.Context) error {
	t := a.t
	t.mu.Lock()
	g := t.inFlight[a.p]
	if g == nil {
		g = &pairGate{slots: make(chan struct{}, freeFailures)}
		t.inFlight[a.p] = g
	}
	g.users++
	t.mu.Unlock()
	a.g = g
	select {
	case g.slots <- struct{}{}:
		a.slot = true
	case <-ctx.Done():
		a.End()
		return ctx.Err()
	}
	g.rw.RLock()
	a.shared = true
	return nil
}

// End releases the attempt without recording an outcome. It may be
// called more than once.
func (a *Attempt) End() {
	if a == nil || a.g == nil {
		return
	}
	g := a.g
	a.g = nil
	switch {
	case a.exclusive:
		g.rw.Unlock()
	case a.shared:
		g.rw.RUnlock()
	}
	if a.slot {
		<-g.slots
	}
	a.slot, a.shared, a.exclusive = false, false, false
	t := a.t
	t.mu.Lock()
	if g.users--; g.users == 0 {
		delete(t.inFlight, a.p)
	}
	t.mu.Unlock()
}
