package authserver

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// countingStore is a real store that counts deny-list reads.
type countingStore struct {
	store.Store
	reads atomic.Int64
}

func (c *countingStore) AccessTokenRevoked(ctx context.Context, jti string) (bool, error) {
	c.reads.Add(1)
	return c.Store.AccessTokenRevoked(ctx, jti)
}

func (e *env) revokedNow(t *testing.T, jti string) bool {
	t.Helper()
	revoked, err := e.srv.Revoked(t.Context(), jti)
	if err != nil {
		t.Fatal(err)
	}
	return revoked
}

func (e *env) revokeAccess(t *testing.T, token string) {
	t.Helper()
	if code, m := e.tokenRequest(PathRevoke, url.Values{"token": {token}, "client_id": {"svc"}, "client_secret": {svcSecret}}, "", ""); code != http.StatusOK {
		t.Fatalf("revoke: %d %v", code, m)
	}
}

// TestRevokedRememberedUntilRevokedHere: a token found not revoked is not read from the
// deny-list again for a second, and a revocation made through this server is seen on the very
// next check all the same.
func TestRevokedRememberedUntilRevokedHere(t *testing.T) {
	ring := newRing(t)
	st := &countingStore{Store: sqliteStore(t, ring)}
	e := newEnv(t, st, ring, true)
	tok := e.serviceToken(t)
	_, c := decodeJWT(t, tok)
	jti := c["jti"].(string)

	before := st.reads.Load()
	for range 3 {
		if e.revokedNow(t, jti) {
			t.Fatal("Revoked = true before any revocation")
		}
	}
	if n := st.reads.Load() - before; n != 1 {
		t.Fatalf("three checks in a second read the deny-list %d times, want 1", n)
	}

	e.revokeAccess(t, tok)
	if !e.revokedNow(t, jti) {
		t.Fatal("Revoked = false on the first check after this server revoked the token")
	}
	// A revoked token is never remembered: it keeps being read, and keeps being refused.
	if !e.revokedNow(t, jti) {
		t.Fatal("Revoked = false on the second check after revocation")
	}
}

// TestRevokedOnAnotherServer: two servers on one database. A revocation made through one is
// refused by the other once revocationTTL has passed since that other server last read the
// deny-list for the token (and at once if it had not read it).
func TestRevokedOnAnotherServer(t *testing.T) {
	ring := newRing(t)
	st := sqliteStore(t, ring)
	a := newEnv(t, st, ring, true)
	b := newEnv(t, st, ring, false)
	now := time.Now()
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	b.srv.now = func() time.Time { return time.Unix(0, clock.Load()) }

	remembered, fresh := a.serviceToken(t), a.serviceToken(t)
	_, rc := decodeJWT(t, remembered)
	_, fc := decodeJWT(t, fresh)
	if b.revokedNow(t, rc["jti"].(string)) {
		t.Fatal("Revoked = true before any revocation")
	}
	a.revokeAccess(t, remembered)
	a.revokeAccess(t, fresh)

	if !b.revokedNow(t, fc["jti"].(string)) {
		t.Error("the other server accepts a revoked token it had not checked before")
	}
	if b.revokedNow(t, rc["jti"].(string)) {
		t.Error("the other server read the deny-list again within revocationTTL of its last read")
	}
	clock.Store(now.Add(revocationTTL).UnixNano())
	if !b.revokedNow(t, rc["jti"].(string)) {
		t.Error("the other server still accepts the revoked token revocationTTL after its last read")
	}
	if !a.revokedNow(t, rc["jti"].(string)) {
		t.Error("the revoking server accepts the token")
	}
}

// TestRevokedWhileChecked: checks running while the token is revoked may answer either way
// until the revocation returns, and every check that starts after it answers revoked, however
// the remembered answers of the checks in flight land.
func TestRevokedWhileChecked(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	for round := range 5 {
		tok := e.serviceToken(t)
		_, c := decodeJWT(t, tok)
		jti := c["jti"].(string)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := e.srv.Revoked(context.Background(), jti); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		e.revokeAccess(t, tok)
		for i := range 50 {
			if !e.revokedNow(t, jti) {
				t.Fatalf("round %d: check %d after the revocation answered not revoked", round, i)
			}
		}
		close(stop)
		wg.Wait()
	}
}

// TestRevocationMemoryByBackend: on PostgreSQL, where servers share the database, nothing is
// remembered, so a revocation by any server is refused by every other on its next request.
func TestRevocationMemoryByBackend(t *testing.T) {
	if revocationMemory("sqlite") != revocationTTL || revocationMemory("postgres") != 0 {
		t.Fatalf("memory: sqlite %v, postgres %v", revocationMemory("sqlite"), revocationMemory("postgres"))
	}
	st := &countingStore{Store: sqliteStore(t, newRing(t))}
	here, there := newRevocations(st, 0), newRevocations(st, 0)
	now := time.Now()
	for range 3 {
		if revoked, err := there.revoked(t.Context(), "j", now); err != nil || revoked {
			t.Fatalf("before the revocation: %v %v", revoked, err)
		}
	}
	if n := st.reads.Load(); n != 3 {
		t.Errorf("%d deny-list reads for 3 checks, want 3 (nothing remembered)", n)
	}
	if err := here.deny(t.Context(), "j", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if revoked, err := there.revoked(t.Context(), "j", now); err != nil || !revoked {
		t.Errorf("the other server, at once after the revocation: %v %v", revoked, err)
	}
}
