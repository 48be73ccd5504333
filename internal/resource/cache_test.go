package resource

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/flowgate/flowgate/internal/dpop"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
	"github.com/flowgate/flowgate/internal/store/storetest"
)

// cached reports whether the validator remembers a verification of raw.
func cached(v *Validator, raw string) bool {
	_, ok := v.cache.lru.Peek(tokenHash(raw))
	return ok
}

// A remembered token is still refused once it is revoked: revocation is read on every request.
func TestCachedTokenRevoked(t *testing.T) {
	ctx := t.Context()
	key := newECKey(t, "ec-1")
	s := newOwnSetup(t, key)
	v, err := newTestValidator(ctx, s.own, nil, Options{Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	c := claimsFor(ownIss, ownIss, "alice")
	raw := key.sign(t, c)
	for range 2 {
		if _, err := v.Validate(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	if !cached(v, raw) {
		t.Fatal("a verified token was not remembered")
	}
	s.revoked.Store(c["jti"], true)
	_, err = v.Validate(ctx, raw)
	wantTokenError(t, err, CodeInvalidToken, "revoked")
}

// A remembered token is refused once the signing key that verified it is retired (the keyfunc
// no longer knows it), and the entry is dropped.
func TestCachedTokenKeyRetired(t *testing.T) {
	ctx := t.Context()
	oldKey, newKey := newECKey(t, "ec-old"), newECKey(t, "ec-new")
	s := newOwnSetup(t, oldKey, newKey)
	v, err := newTestValidator(ctx, s.own, nil, Options{Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	raw := oldKey.sign(t, claimsFor(ownIss, ownIss, "alice"))
	if _, err := v.Validate(ctx, raw); err != nil || !cached(v, raw) {
		t.Fatalf("first use: err %v, cached %v", err, cached(v, raw))
	}
	delete(s.keys, "ec-old")
	_, err = v.Validate(ctx, raw)
	wantTokenError(t, err, CodeInvalidToken, "signing key is unknown")
	if cached(v, raw) {
		t.Fatal("the entry of a retired key was kept")
	}
}

// A remembered token is refused once it expires (past the leeway), whatever the cache holds,
// and is not used from the cache past its exp at all.
func TestCachedTokenExpired(t *testing.T) {
	ctx := t.Context()
	key := newECKey(t, "ec-1")
	s := newOwnSetup(t, key)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	v, err := newTestValidator(ctx, s.own, nil, Options{Logger: quietLogger(t), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	c := claimsFor(ownIss, ownIss, "alice")
	exp := time.Unix(c["exp"].(int64), 0)
	raw := key.sign(t, c)
	if _, err := v.Validate(ctx, raw); err != nil || !cached(v, raw) {
		t.Fatalf("first use: err %v, cached %v", err, cached(v, raw))
	}
	mu.Lock()
	now = exp.Add(Leeway / 2) // past exp, within the leeway: the full check accepts it
	mu.Unlock()
	if _, err := v.Validate(ctx, raw); err != nil {
		t.Fatalf("within the leeway: %v", err)
	}
	if cached(v, raw) {
		t.Fatal("an entry was kept (or made) past the token's exp")
	}
	mu.Lock()
	now = exp.Add(Leeway + time.Second)
	mu.Unlock()
	_, err = v.Validate(ctx, raw)
	wantTokenError(t, err, CodeInvalidToken, "token expired")
}

// A removed issuer's remembered tokens are refused and forgotten; so are those of an issuer
// whose keys rotated so that the verifying key is no longer published.
func TestCachedTokenIssuerRemovedOrRotated(t *testing.T) {
	ctx := t.Context()
	keyA, keyC := newECKey(t, "a1"), newECKey(t, "c1")
	gi := newGoIssuer(t, keyA)
	cfg := IssuerConfig{Name: "alpha", Issuer: gi.iss, Audience: "api://flowgate"}
	v, err := newTestValidator(ctx, newOwnSetup(t).own, []IssuerConfig{cfg},
		Options{Logger: quietLogger(t), UnknownKIDInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tokA := keyA.sign(t, claimsFor(gi.iss, "api://flowgate", "u1"))
	if _, err := v.Validate(ctx, tokA); err != nil || !cached(v, tokA) {
		t.Fatalf("first use: err %v, cached %v", err, cached(v, tokA))
	}

	t.Run("rotated", func(t *testing.T) {
		gi.mu.Lock()
		gi.keys = []testKey{keyC}
		gi.mu.Unlock()
		// A token with the new kid makes the validator refetch the set, which no longer has a1.
		if _, err := v.Validate(ctx, keyC.sign(t, claimsFor(gi.iss, "api://flowgate", "u2"))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // past UnknownKIDInterval, so the refusal is not a rate limit
		_, err := v.Validate(ctx, tokA)
		wantTokenError(t, err, CodeInvalidToken, "signing key is unknown")
		if cached(v, tokA) {
			t.Fatal("the entry of a rotated-out key was kept")
		}
	})

	t.Run("removed", func(t *testing.T) {
		tokC := keyC.sign(t, claimsFor(gi.iss, "api://flowgate", "u3"))
		if _, err := v.Validate(ctx, tokC); err != nil || !cached(v, tokC) {
			t.Fatalf("before removal: err %v, cached %v", err, cached(v, tokC))
		}
		if err := v.SetIssuers(nil); err != nil {
			t.Fatal(err)
		}
		if cached(v, tokC) {
			t.Fatal("a removed issuer's entries were kept")
		}
		_, err := v.Validate(ctx, tokC)
		wantTokenError(t, err, CodeInvalidToken, "unknown issuer")
		// Trusted again (a new issuer entry): its tokens are verified afresh, not taken from
		// what the old entry remembered.
		if err := v.SetIssuers([]IssuerConfig{cfg}); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Validate(ctx, tokC); err != nil {
			t.Fatalf("after trusting it again: %v", err)
		}
	})
}

// A remembered DPoP-bound token still needs a valid proof on every request: the proof is never
// what is remembered.
func TestCachedTokenDPoPProofEveryRequest(t *testing.T) {
	ctx := t.Context()
	st, err := backend.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "f.db"),
		store.Options{Sealer: storetest.NewSealer(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	pkcs8, err := dpop.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	prover, err := dpop.NewProver(pkcs8, nil)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(pkcs8)
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := dpop.Thumbprint(&priv.(*ecdsa.PrivateKey).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	key := newECKey(t, "ec-1")
	v, err := newTestValidator(ctx, newOwnSetup(t, key).own, nil,
		Options{Logger: quietLogger(t), DPoP: &dpop.Verifier{JTIs: st}})
	if err != nil {
		t.Fatal(err)
	}
	c := claimsFor(ownIss, ownIss, "alice")
	c["cnf"] = map[string]string{"jkt": jkt}
	raw := key.sign(t, c)
	const url = "https://flowgate.example/api/v1/me"
	proof, err := prover.Proof("GET", url, raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.ValidateDPoP(ctx, raw, []string{proof}, "GET", url); err != nil {
		t.Fatal(err)
	}
	if !cached(v, raw) {
		t.Fatal("a verified bound token was not remembered")
	}
	_, err = v.ValidateDPoP(ctx, raw, []string{proof}, "GET", url)
	wantTokenError(t, err, dpop.CodeInvalidProof) // the same proof again: a replay
	_, err = v.ValidateDPoP(ctx, raw, nil, "GET", url)
	wantTokenError(t, err, dpop.CodeInvalidProof)
	_, err = v.Validate(ctx, raw)
	wantTokenError(t, err, CodeInvalidToken, "bound to a key")
	fresh, err := prover.Proof("GET", url, raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.ValidateDPoP(ctx, raw, []string{fresh}, "GET", url); err != nil {
		t.Fatalf("a fresh proof with the cached token: %v", err)
	}
}

// The cache holds at most its bound however many distinct tokens arrive: a million entries
// leave exactly DefaultTokenCacheSize.
func TestTokenCacheBounded(t *testing.T) {
	tc := newTokenCache(0)
	e := &verified{}
	var h [32]byte
	for i := range 1_000_000 {
		binary.BigEndian.PutUint64(h[:], uint64(i))
		tc.lru.Add(h, e)
	}
	if n := tc.len(); n != DefaultTokenCacheSize {
		t.Fatalf("%d entries after a million distinct tokens, want the bound %d", n, DefaultTokenCacheSize)
	}
	if newTokenCache(-1) != nil {
		t.Fatal("a negative size did not switch the cache off")
	}
}

// The cache recognises the verifying key however it is held: the same
// object (pointer types), an equal copy after the key set was reloaded,
// and an Ed25519 key, a slice that only Equal can compare.
func TestCachedTokenEveryKeyType(t *testing.T) {
	ctx := t.Context()
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edKey := testKey{kid: "ed-1", method: jwt.SigningMethodEdDSA, priv: edPriv, pub: edPriv.Public()}
	for _, key := range []testKey{newECKey(t, "ec-1"), newRSAKey(t, "rsa-1"), edKey} {
		t.Run(key.method.Alg(), func(t *testing.T) {
			s := newOwnSetup(t, key)
			v, err := newTestValidator(ctx, s.own, nil, Options{Logger: quietLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			raw := key.sign(t, claimsFor(ownIss, ownIss, "alice"))
			for range 2 {
				if _, err := v.Validate(ctx, raw); err != nil {
					t.Fatal(err)
				}
			}
			if !cached(v, raw) {
				t.Fatal("a verified token was not remembered")
			}
			// The key set reloaded: an equal key, another object.
			copied := key
			switch pub := key.pub.(type) {
			case *ecdsa.PublicKey:
				c := *pub
				copied.pub = &c
			case *rsa.PublicKey:
				c := *pub
				copied.pub = &c
			case ed25519.PublicKey:
				copied.pub = slices.Clone(pub)
			}
			s.keys[key.kid] = copied
			if _, err := v.Validate(ctx, raw); err != nil || !cached(v, raw) {
				t.Fatalf("after the reload: err %v, cached %v", err, cached(v, raw))
			}
		})
	}
}
