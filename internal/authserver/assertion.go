package authserver

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/tokenrules"
)

// assertionAlgs are the algorithms a client assertion may use; "none" and
// HMAC are absent on purpose.
var assertionAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// clockSkew is tolerated on assertion times.
const clockSkew = 30 * time.Second

// checkAssertion authenticates a private_key_jwt client (RFC 7523 §3).
func (s *Server) checkAssertion(ctx context.Context, formID, raw string, fail func(string, string) (*client, error)) (*client, error) {
	// go-jose re-encodes what it decoded before verifying, and acts on
	// crit b64: the assertion must be the one spelling its client signed.
	if err := tokenrules.CheckCompact(raw); err != nil {
		return fail(formID, "malformed client assertion: "+err.Error())
	}
	tok, err := josejwt.ParseSigned(raw, assertionAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return fail(formID, "malformed client assertion")
	}
	var unverified josejwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return fail(formID, "malformed client assertion")
	}
	id := unverified.Subject
	if id == "" || unverified.Issuer != id || (formID != "" && formID != id) {
		return fail(formID, "client assertion iss/sub do not name the client")
	}
	c, err := s.st.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fail(id, "unknown client")
	}
	if err != nil {
		return nil, err
	}
	if c.TokenEndpointAuthMethod != string(oidc.AuthMethodPrivateKeyJWT) {
		return fail(id, "client is registered for "+c.TokenEndpointAuthMethod+", not "+string(oidc.AuthMethodPrivateKeyJWT))
	}
	kid := tok.Headers[0].KeyID
	keys, err := s.clientKeys(ctx, &c, kid)
	if err != nil {
		return fail(id, "client keys unavailable: "+truncate(err.Error(), 200))
	}
	var claims josejwt.Claims
	verified := false
	for _, k := range keys {
		if kid != "" && k.KeyID != "" && k.KeyID != kid {
			continue
		}
		if err := tok.Claims(k.Key, &claims); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		if kid != "" {
			return fail(id, "client assertion signature does not verify (kid "+truncate(kid, 64)+")")
		}
		return fail(id, "client assertion signature does not verify")
	}
	now := s.now()
	if claims.Expiry == nil {
		return fail(id, "client assertion has no exp")
	}
	exp := claims.Expiry.Time()
	switch {
	case !exp.After(now.Add(-clockSkew)):
		return fail(id, "client assertion expired")
	case exp.After(now.Add(assertionMaxLife + clockSkew)):
		return fail(id, "client assertion lives too long")
	case claims.NotBefore != nil && claims.NotBefore.Time().After(now.Add(clockSkew)):
		return fail(id, "client assertion not yet valid")
	case !slices.ContainsFunc(claims.Audience, func(a string) bool { return a == s.tokenURL || a == s.issuer }):
		return fail(id, "client assertion aud is neither the token endpoint nor the issuer")
	case claims.ID == "":
		return fail(id, "client assertion has no jti")
	}
	if err := s.st.UseAssertionJTI(ctx, id, claims.ID, now, exp.Add(clockSkew)); errors.Is(err, store.ErrReused) {
		return fail(id, "client assertion jti replayed")
	} else if err != nil {
		return nil, err
	}
	return newClient(c), nil
}

// clientKeys returns the client's registered public keys.
func (s *Server) clientKeys(ctx context.Context, c *store.Client, kid string) ([]jose.JSONWebKey, error) {
	switch {
	case c.JWKS != "":
		var set jose.JSONWebKeySet
		if err := json.Unmarshal([]byte(c.JWKS), &set); err != nil {
			return nil, fmt.Errorf("inline jwks: %w", err)
		}
		return set.Keys, nil
	case c.JWKSURI != "":
		return s.remote.keys(ctx, c.JWKSURI, kid)
	case c.PublicKeyPEM != "":
		block, _ := pem.Decode([]byte(c.PublicKeyPEM))
		if block == nil {
			return nil, errors.New("public_key_pem holds no PEM block")
		}
		if block.Type == "CERTIFICATE" {
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, err
			}
			return []jose.JSONWebKey{{Key: cert.PublicKey}}, nil
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		return []jose.JSONWebKey{{Key: pub}}, nil
	}
	return nil, errors.New("client has no registered key")
}

// remoteJWKS caches clients' jwks_uri documents briefly.
type remoteJWKS struct {
	client *http.Client
	mu     sync.Mutex
	sets   map[string]remoteSet
}

type remoteSet struct {
	keys    []jose.JSONWebKey
	fetched time.Time
}

const (
	remoteJWKSTTL        = 5 * time.Minute
	remoteJWKSMinRefetch = 30 * time.Second
)

func newRemoteJWKS(c *http.Client) *remoteJWKS {
	return &remoteJWKS{client: c, sets: map[string]remoteSet{}}
}

// keys returns the cached set, refetching when stale or, at most every
// remoteJWKSMinRefetch, when kid is not in it (the client rotated).
func (rj *remoteJWKS) keys(ctx context.Context, uri, kid string) ([]jose.JSONWebKey, error) {
	rj.mu.Lock()
	cur, ok := rj.sets[uri]
	rj.mu.Unlock()
	age := time.Since(cur.fetched)
	if ok && age < remoteJWKSTTL {
		known := kid == "" || slices.ContainsFunc(cur.keys, func(k jose.JSONWebKey) bool { return k.KeyID == kid })
		if known || age < remoteJWKSMinRefetch {
			return cur.keys, nil
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	resp, err := rj.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks_uri: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks_uri: status %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("fetch jwks_uri: %w", err)
	}
	rj.mu.Lock()
	if len(rj.sets) > 1000 {
		clear(rj.sets)
	}
	rj.sets[uri] = remoteSet{keys: set.Keys, fetched: time.Now()}
	rj.mu.Unlock()
	return set.Keys, nil
}
