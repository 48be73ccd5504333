package resource

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"time"

	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultTokenCacheSize is how many verified tokens a Validator remembers when
// Options.TokenCacheSize is zero. An entry holds the decoded claims, about the size of the
// token itself, so the cache stays within some megabytes however many distinct tokens arrive.
const DefaultTokenCacheSize = 10_000

// verified is what a successful signature and claims check leaves behind, so that the next
// request with the same token skips the signature check. It is never modified after it is
// built: concurrent requests read it.
type verified struct {
	claims *tokenClaims
	jkt    string        // the DPoP key the token is bound to, "" when unbound
	remote *remoteIssuer // the issuer that verified it; nil for Flowgate's own
	// keyTok carries the header (kid, alg) to ask the issuer's keyfunc again on each use, and
	// key is what it answered when the signature was checked: a key that is no longer
	// published (rotated out, retired) makes the entry worthless.
	keyTok *jwt.Token
	key    any
	exp    time.Time
	nbf    time.Time // zero when the token has no nbf
}

// tokenCache remembers verified tokens by the SHA-256 of the raw token (never the token
// itself), least recently used first out once full.
type tokenCache struct {
	lru *lru.Cache[[sha256.Size]byte, *verified]
}

// newTokenCache returns a cache of size entries; nil (no caching) when size is negative.
func newTokenCache(size int) *tokenCache {
	if size < 0 {
		return nil
	}
	if size == 0 {
		size = DefaultTokenCacheSize
	}
	c, err := lru.New[[sha256.Size]byte, *verified](size)
	if err != nil { // only for a size <= 0, excluded above
		panic(err)
	}
	return &tokenCache{lru: c}
}

func tokenHash(raw string) [sha256.Size]byte { return sha256.Sum256([]byte(raw)) }

// len is the number of entries, for tests and the size bound.
func (tc *tokenCache) len() int { return tc.lru.Len() }

// forgetIssuer drops every entry verified by ri, for an issuer removed or reconfigured. Entries
// of a dropped issuer could never be used anyway (each use checks the issuer is still the one
// trusted); this frees their memory at once.
func (tc *tokenCache) forgetIssuer(ri *remoteIssuer) {
	for _, k := range tc.lru.Keys() {
		if e, ok := tc.lru.Peek(k); ok && e.remote == ri {
			tc.lru.Remove(k)
		}
	}
}

// fromCache answers a token from its remembered verification, ok false when there is none
// that may still be used: the token has not reached its exp (an expired token always takes the
// full check, which refuses it past the leeway), its nbf holds, the issuer that verified it is
// still the one trusted, and it still publishes the key that verified it. An entry that fails
// any of these is dropped. What is never remembered (revocation, roles, links) is then checked
// as for a token seen for the first time; the remembered entry also saves reading the issuer
// out of the token.
func (v *Validator) fromCache(ctx context.Context, h [sha256.Size]byte) (p *Principal, jkt string, ok bool, err error) {
	e, ok := v.cache.lru.Get(h)
	if !ok {
		return nil, "", false, nil
	}
	kf, ri := v.own.Keys, (*remoteIssuer)(nil)
	if e.remote != nil {
		ri = v.issuers.Load().byIss[e.remote.cfg.Issuer]
		if ks := ri.keysOrNil(); ri == e.remote && ks != nil {
			kf = ks.keyfunc(ctx)
		} else {
			kf = nil
		}
	}
	now := v.now()
	if kf == nil || !now.Before(e.exp) || (!e.nbf.IsZero() && now.Add(Leeway).Before(e.nbf)) || !sameKey(kf, e) {
		v.cache.lru.Remove(h)
		return nil, "", false, nil
	}
	if ri != nil {
		p, jkt, err = v.finishRemote(ctx, ri, e.claims, e.jkt)
	} else {
		p, jkt, err = v.finishOwn(ctx, e.claims, e.jkt)
	}
	return p, jkt, true, err
}

// keysOrNil is the issuer's key set, nil for a nil issuer or one not discovered yet.
func (ri *remoteIssuer) keysOrNil() *keySet {
	if ri == nil {
		return nil
	}
	return ri.keys.Load()
}

// sameKey reports whether the keyfunc still answers the key that verified the entry.
func sameKey(kf jwt.Keyfunc, e *verified) bool {
	got, err := kf(e.keyTok)
	if err != nil {
		return false
	}
	if samePointer(got, e.key) {
		return true
	}
	pk, ok := got.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pk.Equal(e.key)
}

// samePointer reports whether a and b are the same key object, as they are
// while the key set is not reloaded: a pointer comparison instead of
// comparing curve points or moduli. ed25519 keys are slices, which == cannot
// compare; they take the Equal path.
func samePointer(a, b crypto.PublicKey) bool {
	switch a := a.(type) {
	case *ecdsa.PublicKey:
		b, ok := b.(*ecdsa.PublicKey)
		return ok && a == b
	case *rsa.PublicKey:
		b, ok := b.(*rsa.PublicKey)
		return ok && a == b
	}
	return false
}

// remember records a successful verification. Only tokens verified by one key named by kid
// are remembered: without a kid the keyfunc answers a whole set, and which of its keys
// matched is not known.
func (v *Validator) remember(h [sha256.Size]byte, c *tokenClaims, jkt string, ri *remoteIssuer, tok *jwt.Token, key any) {
	kid, _ := tok.Header["kid"].(string)
	alg, _ := tok.Header["alg"].(string)
	if _, ok := key.(interface{ Equal(crypto.PublicKey) bool }); !ok || kid == "" || c.Exp == 0 || !v.now().Before(c.exp.Time) {
		return // an expired token accepted within the leeway is not worth remembering
	}
	e := &verified{
		claims: c, jkt: jkt, remote: ri, key: key,
		keyTok: &jwt.Token{Header: map[string]any{"kid": kid, "alg": alg}, Method: tok.Method},
		exp:    c.exp.Time,
	}
	if c.Nbf != 0 {
		e.nbf = c.nbf.Time
	}
	v.cache.lru.Add(h, e)
}

func (v *Validator) now() time.Time {
	if v.opts.Now != nil {
		return v.opts.Now()
	}
	return time.Now()
}
