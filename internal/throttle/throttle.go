// Package throttle slows down repeated failed sign-ins, per account and per
// remote address. The login page and HTTP Basic on the APIs share it, so a
// password guesser gains nothing by switching between them on one server.
package throttle

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// The limits: a few free failures, then one attempt per interval, per
// account and per address. An address gets more room than an account
// because many people can sit behind one address.
const (
	accountBurst    = 5
	accountInterval = 10 * time.Second
	addrBurst       = 20
	addrInterval    = 2 * time.Second
	// maxLimiters bounds memory under a spray of usernames; full limiters
	// are forgotten first, as they remember nothing.
	maxLimiters = 10000
)

// Failures counts failed attempts only: a correct password costs nothing
// from the budget, so a busy integration is never slowed down. It is safe
// for concurrent use. Counts are per process.
type Failures struct {
	mu      sync.Mutex
	account map[string]*rate.Limiter
	addr    map[string]*rate.Limiter
}

// New returns an empty failure counter.
func New() *Failures {
	return &Failures{account: map[string]*rate.Limiter{}, addr: map[string]*rate.Limiter{}}
}

// Wait is how long the caller must wait before the next attempt for this
// account from this address; zero means go ahead.
func (f *Failures) Wait(account, addr string) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	var d time.Duration
	for _, c := range []struct {
		l     *rate.Limiter
		every time.Duration
	}{
		{limiterIn(f.account, account, accountInterval, accountBurst, false), accountInterval},
		{limiterIn(f.addr, addr, addrInterval, addrBurst, false), addrInterval},
	} {
		if c.l == nil {
			continue
		}
		if tk := c.l.TokensAt(now); tk < 1 {
			d = max(d, time.Duration((1-tk)*float64(c.every)))
		}
	}
	return d
}

// Fail records a failed attempt.
func (f *Failures) Fail(account, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	limiterIn(f.account, account, accountInterval, accountBurst, true).Allow()
	limiterIn(f.addr, addr, addrInterval, addrBurst, true).Allow()
}

func limiterIn(m map[string]*rate.Limiter, key string, every time.Duration, burst int, create bool) *rate.Limiter {
	l := m[key]
	if l == nil && create {
		if len(m) >= maxLimiters {
			for k, v := range m {
				if v.Tokens() >= float64(burst) {
					delete(m, k)
				}
			}
		}
		// A spray faster than limiters refill leaves none full: then drop
		// a tenth at random (map order). Forgetting some attackers' history
		// is better than unbounded memory.
		for k := range m {
			if len(m) < maxLimiters*9/10 {
				break
			}
			delete(m, k)
		}
		l = rate.NewLimiter(rate.Every(every), burst)
		m[key] = l
	}
	return l
}
