package store

import (
	"context"
	"time"
)

// SignInPair is what the sign-in throttle remembers about one (account,
// address) pair: how many sign-ins failed and when the last one did.
type SignInPair struct {
	Failures     int
	LastFailedAt time.Time
}

// SignInFailures is the state of the sign-in throttle (package throttle),
// kept in the store so that every server sees the same counts and a
// restart forgets nothing. One row per (account, address) pair that
// failed; a row carries its own expiry, set by the throttle's policy, and
// is ignored and pruned once that has passed. Only failures write: a
// successful sign-in reads, and deletes its pair only when it had failed.
type SignInFailures interface {
	// GetSignInFailures returns the live state of the pair (account,
	// addr) at now (zero when none, or expired), and the number of
	// distinct accounts addr has failed on since windowStart.
	GetSignInFailures(ctx context.Context, account, addr string, now, windowStart time.Time) (pair SignInPair, addrAccounts int, err error)
	// RecordSignInFailure counts one failure of the pair at time at and
	// keeps the pair until expiresAt; a pair that had expired starts
	// again from one. It returns the pair's failures after the count, in
	// one statement, so concurrent failures are all counted.
	RecordSignInFailure(ctx context.Context, account, addr string, at, expiresAt time.Time) (failures int, err error)
	// ClearSignInFailures forgets the pair (account, addr); no error when
	// there is none.
	ClearSignInFailures(ctx context.Context, account, addr string) error
	// DeleteExpiredSignInFailures removes pairs whose expiry is at or
	// before now and returns how many.
	DeleteExpiredSignInFailures(ctx context.Context, now time.Time) (int, error)
}
