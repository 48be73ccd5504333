package authserver

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// revocationTTL bounds how long a server answers "not revoked" for an access token from a
// deny-list read it made before. It only matters for a revocation made on another server (one
// made on this server is seen at once, below), so a token revoked on another server sharing
// the database is refused by this one within a second, as a removed client is (clientTTL).
// SQLite serves one server, so there every revocation is seen on the next request.
const revocationTTL = time.Second

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
	st  store.AccessTokenDenylist
	gen atomic.Uint64
	mu  sync.RWMutex
	m   map[string]notRevoked
}

// notRevoked is a deny-list read that found nothing: when, and under which gen.
type notRevoked struct {
	gen     uint64
	expires time.Time
}

func newRevocations(st store.AccessTokenDenylist) *revocations {
	return &revocations{st: st, m: map[string]notRevoked{}}
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
	if err != nil || revoked {
		return revoked, err
	}
	rv.mu.Lock()
	if len(rv.m) >= maxRememberedRevocations {
		clear(rv.m)
	}
	rv.m[key] = notRevoked{gen: gen, expires: now.Add(revocationTTL)}
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
