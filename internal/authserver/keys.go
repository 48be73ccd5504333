package authserver

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
)

// Key purposes: access tokens are signed with auth.signing_alg, ID tokens
// with RS256, which every relying party supports.
const (
	PurposeAccess = "access"
	PurposeID     = "id"
)

// keyReloadInterval is how often keys are re-read from the store, so that
// a rotation by `flowgate keys rotate` or another server is picked up.
const keyReloadInterval = 30 * time.Second

// unknownKIDInterval bounds reloads caused by tokens naming a kid we do not
// know: a flood of forged kids must not become a flood of queries.
const unknownKIDInterval = 5 * time.Second

// signingKey is a loaded key ready to sign.
type signingKey struct {
	id, alg string
	priv    crypto.Signer
	// header is the base64url JWS protected header for access tokens
	// (typ at+jwt) or ID tokens (typ JWT), computed once.
	header string
}

// keyState is an immutable snapshot of the published keys.
type keyState struct {
	access, id *signingKey
	public     map[string]crypto.PublicKey
	jwks       []byte
}

// Keys holds the signing keys in memory, re-read from the store
// periodically and on an unknown kid. It is safe for concurrent use.
type Keys struct {
	st        store.SigningKeys
	accessAlg string
	maxTTL    time.Duration
	logger    *slog.Logger

	state      atomic.Pointer[keyState]
	reloadMu   sync.Mutex
	lastReload atomic.Int64 // unix nanos of the last reload caused by an unknown kid
}

// NewKeys loads the keys, creating the missing ones: an access-token key
// of accessAlg and an RS256 ID-token key. maxTTL is how long a retired key
// stays published after a rotation.
func NewKeys(ctx context.Context, st store.SigningKeys, accessAlg string, maxTTL time.Duration, logger *slog.Logger) (*Keys, error) {
	if accessAlg == "" {
		accessAlg = "ES256"
	}
	if logger == nil {
		logger = slog.Default()
	}
	k := &Keys{st: st, accessAlg: accessAlg, maxTTL: maxTTL, logger: logger}
	if err := k.ensure(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

// ensure creates a key for each purpose that has none, then loads. Two
// servers starting at once both try; the store lets one insert win and the
// other simply loads the winner's key.
func (k *Keys) ensure(ctx context.Context) error {
	keys, err := k.st.ListSigningKeys(ctx, time.Now())
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	have := map[string]bool{}
	for _, sk := range keys {
		if sk.RetireAfter.IsZero() {
			have[sk.Purpose] = true
		}
	}
	for _, p := range []struct{ purpose, alg string }{{PurposeAccess, k.accessAlg}, {PurposeID, "RS256"}} {
		if have[p.purpose] {
			continue
		}
		sk, err := GenerateSigningKey(p.purpose, p.alg)
		if err != nil {
			return err
		}
		if err := k.st.AddSigningKey(ctx, sk); err != nil && !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("signing keys: %w", err)
		}
	}
	return k.Reload(ctx)
}

// Rotate adds a new active key for purpose and keeps the previous one
// published for maxTTL, until every token it signed has expired. It is
// audited on rec (nil: not recorded) as keys.rotated by by, a principal
// (see audit.Change).
func Rotate(ctx context.Context, st store.SigningKeys, rec audit.Recorder, by, purpose, alg string, maxTTL time.Duration) (store.SigningKey, error) {
	sk, err := GenerateSigningKey(purpose, alg)
	if err != nil {
		return store.SigningKey{}, err
	}
	if err := st.RotateSigningKey(ctx, sk, time.Now().Add(maxTTL)); err != nil {
		return store.SigningKey{}, fmt.Errorf("rotate %s key: %w", purpose, err)
	}
	sk.Private = nil
	audit.Change{Event: audit.KeysRotated, By: by, Detail: fmt.Sprintf("%s key %s (%s)", purpose, sk.ID, sk.Alg)}.Record(ctx, rec)
	return sk, nil
}

// GenerateSigningKey makes a new key of alg (ES256, RS256 or EdDSA) for
// purpose, with its public JWK.
func GenerateSigningKey(purpose, alg string) (store.SigningKey, error) {
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return store.SigningKey{}, fmt.Errorf("signing key: unsupported algorithm %q", alg)
	}
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("signing key: generate: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("signing key: %w", err)
	}
	jwk := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("signing key: %w", err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)[:22]
	pub, err := jwk.MarshalJSON()
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("signing key: %w", err)
	}
	return store.SigningKey{ID: jwk.KeyID, Purpose: purpose, Alg: alg, Private: der, PublicJWK: string(pub), CreatedAt: time.Now()}, nil
}

// Reload re-reads the keys from the store.
func (k *Keys) Reload(ctx context.Context) error {
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	keys, err := k.st.ListSigningKeys(ctx, time.Now())
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	ns := &keyState{public: make(map[string]crypto.PublicKey, len(keys))}
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, sk := range keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON([]byte(sk.PublicJWK)); err != nil {
			return fmt.Errorf("signing key %s: public JWK: %w", sk.ID, err)
		}
		ns.public[sk.ID] = jwk.Key
		set.Keys = append(set.Keys, jwk)
		if !sk.RetireAfter.IsZero() {
			continue
		}
		// Keys come newest first: the first active key of a purpose wins.
		slot := &ns.access
		typ := "at+jwt"
		if sk.Purpose == PurposeID {
			slot, typ = &ns.id, "JWT"
		}
		if *slot != nil {
			continue
		}
		priv, err := x509.ParsePKCS8PrivateKey(sk.Private)
		if err != nil {
			return fmt.Errorf("signing key %s: %w", sk.ID, err)
		}
		signer, ok := priv.(crypto.Signer)
		if !ok {
			return fmt.Errorf("signing key %s: not a signing key", sk.ID)
		}
		hdr, _ := json.Marshal(map[string]string{"alg": sk.Alg, "kid": sk.ID, "typ": typ})
		*slot = &signingKey{id: sk.ID, alg: sk.Alg, priv: signer, header: base64.RawURLEncoding.EncodeToString(hdr)}
	}
	if ns.access == nil || ns.id == nil {
		return errors.New("signing keys: no active access or ID token key in the store")
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	ns.jwks = jwks
	k.state.Store(ns)
	return nil
}

// run reloads periodically until ctx ends. A failed reload keeps the keys
// already loaded: a database hiccup must not stop token issuance.
func (k *Keys) run(ctx context.Context) {
	t := time.NewTicker(keyReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := k.Reload(ctx); err != nil && ctx.Err() == nil {
				k.logger.Warn("reloading signing keys failed; keeping the loaded ones", "err", err)
			}
		}
	}
}

// JWKS is the public key set as JSON: every key still published.
func (k *Keys) JWKS() []byte { return k.state.Load().jwks }

// PublicKey returns the public key of kid, reloading once (rate-limited)
// when kid is unknown, so a key rotated in by another server is found.
func (k *Keys) PublicKey(ctx context.Context, kid string) (crypto.PublicKey, bool) {
	if pk, ok := k.state.Load().public[kid]; ok {
		return pk, true
	}
	now := time.Now().UnixNano()
	last := k.lastReload.Load()
	if now-last < int64(unknownKIDInterval) || !k.lastReload.CompareAndSwap(last, now) {
		return nil, false
	}
	if err := k.Reload(ctx); err != nil {
		k.logger.Warn("reloading signing keys for an unknown kid failed", "err", err)
		return nil, false
	}
	pk, ok := k.state.Load().public[kid]
	return pk, ok
}

// Keyfunc is a jwt.Keyfunc over the published keys, for the resource
// server's resource.OwnIssuer.Keys.
func (k *Keys) Keyfunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	pk, ok := k.PublicKey(context.Background(), kid)
	if !ok {
		return nil, fmt.Errorf("unknown key id %q", kid)
	}
	return pk, nil
}
