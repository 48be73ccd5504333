package resource

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestOwnIssuerTokens(t *testing.T) {
	ctx := t.Context()
	key := newECKey(t, "own-1")
	s := newOwnSetup(t, key)
	v, err := newTestValidator(ctx, s.own, nil, Options{Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("user token", func(t *testing.T) {
		c := claimsFor(ownIss, ownIss, "alice")
		c["client_id"] = "portal"
		c["scope"] = "openid workflows.read tasks"
		p, err := v.Validate(ctx, key.sign(t, c))
		if err != nil {
			t.Fatal(err)
		}
		if p.ID != "user:alice" || p.Kind != KindUser || p.ClientID != "portal" || p.IssuerName != OwnIssuerName {
			t.Fatalf("principal = %+v", p)
		}
		if !p.HasRole("approver") || !p.HasScope("tasks") || p.HasScope("admin") {
			t.Fatalf("roles/scopes = %v / %v", p.Roles, p.Scopes)
		}
	})
	t.Run("client credentials token", func(t *testing.T) {
		c := claimsFor(ownIss, ownIss, "portal")
		c["client_id"], c["gty"] = "portal", "client_credentials"
		c["scope"] = "flows.invoke"
		p, err := v.Validate(ctx, key.sign(t, c))
		if err != nil {
			t.Fatal(err)
		}
		if p.ID != "client:portal" || p.Kind != KindClient || !slices.Equal(p.Roles, []string{"invoicer"}) {
			t.Fatalf("principal = %+v", p)
		}
	})
	t.Run("configured resource audience", func(t *testing.T) {
		c := claimsFor(ownIss, "https://flowgate.example/api", "alice")
		if _, err := v.Validate(ctx, key.sign(t, c)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		c := claimsFor(ownIss, ownIss, "alice")
		raw := key.sign(t, c)
		if _, err := v.Validate(ctx, raw); err != nil {
			t.Fatal(err)
		}
		s.revoked.Store(c["jti"], true)
		_, err := v.Validate(ctx, raw)
		wantTokenError(t, err, CodeInvalidToken, "revoked")
	})
	t.Run("no jti", func(t *testing.T) {
		c := claimsFor(ownIss, ownIss, "alice")
		delete(c, "jti")
		_, err := v.Validate(ctx, key.sign(t, c))
		wantTokenError(t, err, CodeInvalidToken, "no jti")
	})
	t.Run("unknown user", func(t *testing.T) {
		_, err := v.Validate(ctx, key.sign(t, claimsFor(ownIss, ownIss, "mallory")))
		wantTokenError(t, err, CodeInvalidToken, "user mallory is unknown or disabled")
	})
	t.Run("id token audience refused", func(t *testing.T) {
		_, err := v.Validate(ctx, key.sign(t, claimsFor(ownIss, "portal", "alice")))
		wantTokenError(t, err, CodeInvalidToken, "wrong audience: expected "+ownIss, "found portal")
	})
	t.Run("unknown kid", func(t *testing.T) {
		other := newECKey(t, "own-2")
		_, err := v.Validate(ctx, other.sign(t, claimsFor(ownIss, ownIss, "alice")))
		wantTokenError(t, err, CodeInvalidToken, "signing key is unknown")
	})
	t.Run("dpop-bound token as bearer", func(t *testing.T) {
		c := claimsFor(ownIss, ownIss, "alice")
		c["cnf"] = map[string]string{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
		_, err := v.Validate(ctx, key.sign(t, c))
		wantTokenError(t, err, CodeInvalidToken, "bound to a key")
	})
}

// TestRefusedTokens signs tokens no real provider would issue with a Go test issuer that is
// trusted like any external one.
func TestRefusedTokens(t *testing.T) {
	ctx := t.Context()
	rsaKey := newRSAKey(t, "rsa-1")
	ecKey := newECKey(t, "ec-1")
	gi := newGoIssuer(t, rsaKey, ecKey)
	s := newOwnSetup(t, newECKey(t, "own-1"))
	v, err := newTestValidator(ctx, s.own, []IssuerConfig{{Name: "test", Issuer: gi.iss, Audience: "api://flowgate"}},
		Options{Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	good := func() jwt.MapClaims { return claimsFor(gi.iss, "api://flowgate", "user-42") }

	// The reference: a good token from the same issuer is accepted.
	for _, k := range []testKey{rsaKey, ecKey} {
		p, err := v.Validate(ctx, k.sign(t, good()))
		if err != nil {
			t.Fatalf("%s: %v", k.method.Alg(), err)
		}
		if p.ID != "test:user-42" || p.Kind != KindExternal {
			t.Fatalf("principal = %+v", p)
		}
	}

	pubDER, err := x509.MarshalPKIXPublicKey(rsaKey.pub)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	tests := []struct {
		name string
		raw  func() string
		want []string
	}{
		{"wrong audience", func() string {
			c := good()
			c["aud"] = []string{"api://other", "api://third"}
			return rsaKey.sign(t, c)
		}, []string{"wrong audience: expected api://flowgate, found api://other api://third"}},
		{"no audience", func() string {
			c := good()
			delete(c, "aud")
			return rsaKey.sign(t, c)
		}, []string{"wrong audience: expected api://flowgate, found none"}},
		{"unknown issuer", func() string {
			c := good()
			c["iss"] = "https://evil.example"
			return rsaKey.sign(t, c)
		}, []string{"unknown issuer https://evil.example"}},
		{"issuer differing by a slash", func() string {
			c := good()
			c["iss"] = gi.iss + "/"
			return rsaKey.sign(t, c)
		}, []string{"unknown issuer"}},
		{"no issuer", func() string {
			c := good()
			delete(c, "iss")
			return rsaKey.sign(t, c)
		}, []string{"no iss"}},
		{"expired beyond leeway", func() string {
			c := good()
			c["iat"] = time.Now().Add(-time.Hour).Unix()
			c["exp"] = time.Now().Add(-61 * time.Second).Unix()
			return rsaKey.sign(t, c)
		}, []string{"token expired at "}},
		{"no exp", func() string {
			c := good()
			delete(c, "exp")
			return rsaKey.sign(t, c)
		}, []string{"no exp"}},
		{"not yet valid", func() string {
			c := good()
			c["nbf"] = time.Now().Add(2 * time.Minute).Unix()
			return ecKey.sign(t, c)
		}, []string{"not valid yet"}},
		{"issued in the future", func() string {
			c := good()
			c["iat"] = time.Now().Add(2 * time.Minute).Unix()
			return ecKey.sign(t, c)
		}, []string{"issued in the future"}},
		{"tampered payload", func() string {
			raw := rsaKey.sign(t, good())
			c := good()
			c["sub"] = "admin"
			forged := rsaKey.sign(t, c)
			parts, fparts := strings.Split(raw, "."), strings.Split(forged, ".")
			return parts[0] + "." + fparts[1] + "." + parts[2]
		}, []string{"bad signature"}},
		{"tampered signature", func() string {
			raw := ecKey.sign(t, good())
			sig, _ := base64.RawURLEncoding.DecodeString(raw[strings.LastIndex(raw, ".")+1:])
			sig[5] ^= 0xff
			return raw[:strings.LastIndex(raw, ".")+1] + base64.RawURLEncoding.EncodeToString(sig)
		}, []string{"bad signature"}},
		{"signed by another key with a known kid", func() string {
			impostor := newRSAKey(t, "rsa-1")
			return impostor.sign(t, good())
		}, []string{"bad signature"}},
		{"alg none", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, good())
			tok.Header["kid"] = "rsa-1"
			s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, []string{"algorithm none is not allowed"}},
		{"HS256 with the public key as secret", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, good())
			tok.Header["kid"] = "rsa-1"
			s, err := tok.SignedString(pubPEM)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, []string{"algorithm HS256 is not allowed"}},
		{"unsupported alg", func() string {
			raw := rsaKey.sign(t, good())
			hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"XS999","kid":"rsa-1"}`))
			return hdr + raw[strings.Index(raw, "."):]
		}, []string{"algorithm XS999 is not allowed"}},
		{"unknown kid", func() string {
			return newRSAKey(t, "rsa-unknown").sign(t, good())
		}, []string{"signing key is unknown"}},
		{"not a JWT", func() string { return "opaque-token-value" }, []string{"malformed"}},
		{"garbage payload", func() string { return "e30.!!!.e30" }, []string{"malformed"}},
		{"quote in issuer is not echoed raw", func() string {
			c := good()
			c["iss"] = `x", error="spoof`
			return rsaKey.sign(t, c)
		}, []string{`unknown issuer x?, error=?spoof`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Validate(ctx, tt.raw())
			wantTokenError(t, err, CodeInvalidToken, tt.want...)
		})
	}

	t.Run("expired within leeway accepted", func(t *testing.T) {
		c := good()
		c["iat"] = time.Now().Add(-time.Hour).Unix()
		c["exp"] = time.Now().Add(-30 * time.Second).Unix()
		if _, err := v.Validate(ctx, rsaKey.sign(t, c)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestExternalClaimMapping(t *testing.T) {
	ctx := t.Context()
	key := newRSAKey(t, "k1")
	gi := newGoIssuer(t, key)
	s := newOwnSetup(t, newECKey(t, "own-1"))
	v, err := newTestValidator(ctx, s.own, []IssuerConfig{{
		Name: "kc", Issuer: gi.iss, Audience: "api://flowgate",
		SubjectClaim: "preferred_username", ScopeClaim: "scp", RolesClaim: "realm_access.roles",
		ScopeMap: map[string]string{"Workflows.Read": "workflows.read"},
	}}, Options{Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	c := claimsFor(gi.iss, "api://flowgate", "b1d2")
	c["preferred_username"] = "bob"
	c["scp"] = []string{"Workflows.Read", "User.Read"}
	c["scope"] = "ignored"
	c["azp"] = "spa"
	c["realm_access"] = map[string]any{"roles": []string{"approver"}}
	p, err := v.Validate(ctx, key.sign(t, c))
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "kc:bob" || p.ClientID != "spa" ||
		!slices.Equal(p.Scopes, []string{"workflows.read", "User.Read"}) ||
		!slices.Equal(p.Roles, []string{"approver"}) {
		t.Fatalf("principal = %+v", p)
	}

	delete(c, "preferred_username")
	_, err = v.Validate(ctx, key.sign(t, c))
	wantTokenError(t, err, CodeInvalidToken, "no preferred_username claim")
}

func TestMisconfiguredIssuers(t *testing.T) {
	ctx := t.Context()
	key := newRSAKey(t, "k1")
	down := newGoIssuer(t, key)
	down.metadataDown.Store(true)
	noJWKS := newGoIssuer(t, key)
	noJWKS.noJWKSURI.Store(true)
	s := newOwnSetup(t, newECKey(t, "own-1"))
	v, err := newTestValidator(ctx, s.own, []IssuerConfig{
		{Name: "down", Issuer: down.iss, Audience: "api://flowgate"},
		{Name: "nojwks", Issuer: noJWKS.iss, Audience: "api://flowgate"},
		{Name: "unreachable", Issuer: "http://127.0.0.1:1", Audience: "api://flowgate"},
		{Name: "noaud", Issuer: "https://noaud.example"},
	}, Options{Logger: quietLogger(t), DiscoveryRetryMin: 50 * time.Millisecond, DiscoveryRetryMax: 100 * time.Millisecond, HTTPTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("a misconfigured issuer must not stop the server: %v", err)
	}
	st := v.Status()
	if len(st) != 5 || st[0].Name != OwnIssuerName || !st[0].Ready {
		t.Fatalf("status = %+v", st)
	}
	wantErr := map[string]string{"down": "503", "nojwks": "no jwks_uri", "unreachable": "connect", "noaud": "audience is required"}
	for _, is := range st[1:] {
		if is.Ready || !strings.Contains(is.Error, wantErr[is.Name]) {
			t.Errorf("status of %s = %+v, want not ready with %q", is.Name, is, wantErr[is.Name])
		}
	}
	_, err = v.Validate(ctx, key.sign(t, claimsFor(down.iss, "api://flowgate", "u")))
	wantTokenError(t, err, CodeInvalidToken, "keys of issuer down are not available")

	// The metadata comes back: the background retry picks the issuer up.
	down.metadataDown.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err = v.Validate(ctx, key.sign(t, claimsFor(down.iss, "api://flowgate", "u"))); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("issuer not picked up after its metadata came back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := v.Status(); !st[1].Ready || st[1].Error != "" || st[1].Keys != 1 || st[1].JWKSURI != down.iss+"/jwks" {
		t.Fatalf("status after recovery = %+v", st[1])
	}
}

func TestNewValidatorRefusesBadConfig(t *testing.T) {
	s := newOwnSetup(t, newECKey(t, "own-1"))
	for name, issuers := range map[string][]IssuerConfig{
		"duplicate name":   {{Name: "a", Issuer: "https://a"}, {Name: "a", Issuer: "https://b"}},
		"reserved name":    {{Name: OwnIssuerName, Issuer: "https://a"}},
		"duplicate issuer": {{Name: "a", Issuer: "https://a"}, {Name: "b", Issuer: "https://a"}},
		"own issuer":       {{Name: "a", Issuer: ownIss}},
		"no issuer":        {{Name: "a"}},
	} {
		if _, err := newTestValidator(t.Context(), s.own, issuers, Options{}); err == nil {
			t.Errorf("%s: NewValidator succeeded", name)
		}
	}
	if _, err := newTestValidator(t.Context(), OwnIssuer{Issuer: ownIss}, nil, Options{}); err == nil {
		t.Error("own issuer without keys accepted")
	}
}

// TestUnknownKIDRateLimit floods the validator with unknown kids: one refetch per interval,
// and refused tokens do not wait for the limiter.
func TestUnknownKIDRateLimit(t *testing.T) {
	ctx := t.Context()
	key := newRSAKey(t, "k1")
	gi := newGoIssuer(t, key)
	s := newOwnSetup(t, newECKey(t, "own-1"))
	const interval = 400 * time.Millisecond
	v, err := newTestValidator(ctx, s.own, []IssuerConfig{{Name: "t", Issuer: gi.iss, Audience: "api://flowgate"}},
		Options{Logger: quietLogger(t), UnknownKIDInterval: interval})
	if err != nil {
		t.Fatal(err)
	}
	if n := gi.jwksHits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times at start, want 1", n)
	}
	flood := func() {
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				k := newECKey(t, fmt.Sprintf("rogue-%d", i))
				_, err := v.Validate(ctx, k.sign(t, claimsFor(gi.iss, "api://flowgate", "u")))
				wantTokenError(t, err, CodeInvalidToken, "signing key is unknown")
			})
		}
		wg.Wait()
	}
	start := time.Now()
	flood()
	if n := gi.jwksHits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times after a flood, want 2", n)
	}
	if el := time.Since(start); el > interval {
		t.Fatalf("flood took %v: refused tokens waited for the limiter", el)
	}
	time.Sleep(interval + 50*time.Millisecond)
	flood()
	if n := gi.jwksHits.Load(); n != 3 {
		t.Fatalf("JWKS fetched %d times after a second flood one interval later, want 3", n)
	}
	// Known keys are never affected.
	if _, err := v.Validate(ctx, key.sign(t, claimsFor(gi.iss, "api://flowgate", "u"))); err != nil {
		t.Fatal(err)
	}
}
