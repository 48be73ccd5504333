package authserver

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// revocationTTL bounds how long a server answers "not revoked" for an access token from a
// deny-list read it made before, on a database that serves one server (SQLite): a
// revocation made on this server is seen at once (below), and a revocation made by another
// process on the same file (none does today) within a second. On PostgreSQL, where several
// servers share the database, nothing is remembered (revocationMemory): a token revoked
// through one server is refused by every server on its next request.
const revocationTTL = time.Second

// revocationMemory is how long "not revoked" is remembered on a backend.
func revocationMemory(backend string) time.Duration {
	if backend == "sqlite" {
		return revocationTTL
	}
	return 0
}

// maxRememberedRevocations bounds the memory of revocations: past it, everything is forgotten
// and read again.
const maxRememberedRevocations = 10000

// revocations answers, for the resource server's check on every API request, whether an access
// token is deny-listed, without a database read for a token it found not revoked less than
// revocationTTL ago. Only "not revoked" is remembered: a revoked token always reaches the store.
//
// A revocation made through this server (deny) raises gen after its write, and an answer is
// remembered with the gen read before its database read, so once deny returns nothing read
// before the write is used: the next request on this server reads the deny-list again.
type revocations struct {
	st store.AccessTokenDenylist
	// ttl is how long a "not revoked" is remembered; 0 remembers none.
	ttl time.Duration
	gen atomic.Uint64
	mu  sync.RWMutex
	m   map[string]notRevoked
}

// notRevoked is a deny-list read that found nothing: when, and under which gen.
type notRevoked struct {
	gen     uint64
	expires time.Time
}

func newRevocations(st store.AccessTokenDenylist, ttl time.Duration) *revocations {
	return &revocations{st: st, ttl: ttl, m: map[string]notRevoked{}}
}

// revoked reports whether key (a jti, or a family's deny-list key) is deny-listed.
func (rv *revocations) revoked(ctx context.Context, key string, now time.Time) (bool, error) {
	gen := rv.gen.Load()
	rv.mu.RLock()
	e, ok := rv.m[key]
	rv.mu.RUnlock()
	if ok && e.gen == gen && now.Before(e.expires) {
		return false, nil
	}
	revoked, err := rv.st.AccessTokenRevoked(ctx, key)
	if err != nil || revoked || rv.ttl <= 0 {
		return revoked, err
	}
	rv.mu.Lock()
	if len(rv.m) >= maxRememberedRevocations {
		clear(rv.m)
	}
	rv.m[key] = notRevoked{gen: gen, expires: now.Add(rv.ttl)}
	rv.mu.Unlock()
	return false, nil
}

// deny deny-lists key until expiresAt. Every revocation made on this server goes through it.
func (rv *revocations) deny(ctx context.Context, key string, expiresAt time.Time) error {
	err := rv.st.RevokeAccessToken(ctx, key, expiresAt)
	// After the write, and also when it failed (it may have landed): every "not revoked" read
	// before this point is no longer trusted.
	rv.gen.Add(1)
	return err
}
