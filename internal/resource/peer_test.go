package resource

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests run against an independent OpenID provider: panva/node-oidc-provider, started
// from test/peers/oidc-provider (see its server.js). Tokens come from its token endpoint with
// client credentials; nothing in them is made by Flowgate.

func newPeerValidator(t *testing.T, p *peer) *Validator {
	t.Helper()
	s := newOwnSetup(t, newECKey(t, "own-1"))
	v, err := newTestValidator(t.Context(), s.own, []IssuerConfig{{
		Name:     "ext",
		Issuer:   p.issuer,
		Audience: "api://flowgate",
		ScopeMap: map[string]string{"ext.tasks": "tasks"},
	}}, Options{Logger: quietLogger(t), HTTPTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if st := v.Status(); !st[1].Ready {
		t.Fatalf("peer issuer not ready: %+v", st[1])
	}
	return v
}

func TestOIDCProviderTokens(t *testing.T) {
	p := startPeer(t)
	v := newPeerValidator(t, p)
	ctx := t.Context()

	t.Run("accepted", func(t *testing.T) {
		pr, err := v.Validate(ctx, p.token(t, "", "workflows.read", "ext.tasks"))
		if err != nil {
			t.Fatal(err)
		}
		if pr.ID != "ext:flowgate-test" || pr.Kind != KindExternal || pr.IssuerName != "ext" || pr.Issuer != p.issuer ||
			pr.ClientID != "flowgate-test" || !slices.Equal(pr.Audience, []string{"api://flowgate"}) {
			t.Fatalf("principal = %+v", pr)
		}
		if !slices.Equal(pr.Scopes, []string{"workflows.read", "tasks"}) {
			t.Fatalf("scopes = %v, want ext.tasks mapped to tasks", pr.Scopes)
		}
		if !slices.Equal(pr.Roles, []string{"approver", "reader"}) {
			t.Fatalf("roles = %v", pr.Roles)
		}
		if d := time.Until(pr.ExpiresAt); d < 4*time.Minute || d > 6*time.Minute {
			t.Fatalf("expires at %v", pr.ExpiresAt)
		}
	})
	t.Run("wrong audience", func(t *testing.T) {
		_, err := v.Validate(ctx, p.token(t, "api://other", "workflows.read"))
		wantTokenError(t, err, CodeInvalidToken, "wrong audience: expected api://flowgate, found api://other")
	})
}

// TestOIDCProviderKeyRotation: the provider starts signing with a new key. The first token
// with the new kid costs one key set refetch; tokens signed with the old key keep working.
// Then the provider goes down: tokens signed with known keys still work.
func TestOIDCProviderKeyRotationAndOutage(t *testing.T) {
	p := startPeer(t)
	v := newPeerValidator(t, p)
	ctx := t.Context()

	oldTok := p.token(t, "", "workflows.read")
	if _, err := v.Validate(ctx, oldTok); err != nil {
		t.Fatal(err)
	}
	before := p.jwksRequests(t)

	newKID := p.rotate(t)
	newTok := p.token(t, "", "workflows.read")
	if kidOf(t, newTok) != newKID || kidOf(t, oldTok) == newKID {
		t.Fatalf("rotation did not change the signing key (%s)", newKID)
	}
	for range 5 {
		if _, err := v.Validate(ctx, newTok); err != nil {
			t.Fatalf("token signed with the new key: %v", err)
		}
	}
	if got := p.jwksRequests(t) - before; got != 1 {
		t.Fatalf("key set fetched %d times for the new kid, want 1", got)
	}
	if _, err := v.Validate(ctx, oldTok); err != nil {
		t.Fatalf("token signed with the old, still published key: %v", err)
	}

	p.stop()
	for _, tok := range []string{oldTok, newTok} {
		if _, err := v.Validate(ctx, tok); err != nil {
			t.Fatalf("provider down: token signed with a known key refused: %v", err)
		}
	}
}

// TestOIDCProviderUnknownKIDFlood counts requests at the provider's JWKS endpoint while tokens
// with unknown kids (claiming the provider as issuer) pour in: at most one refetch per 10 s.
func TestOIDCProviderUnknownKIDFlood(t *testing.T) {
	p := startPeer(t)
	v := newPeerValidator(t, p)
	ctx := t.Context()
	before := p.jwksRequests(t)

	start := time.Now()
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			k := newECKey(t, "rogue-"+strings.Repeat("x", i%7)+string(rune('a'+i%26)))
			_, err := v.Validate(ctx, k.sign(t, claimsFor(p.issuer, "api://flowgate", "u")))
			wantTokenError(t, err, CodeInvalidToken, "signing key is unknown")
		})
	}
	wg.Wait()
	if got := p.jwksRequests(t) - before; got != 1 {
		t.Fatalf("a flood of unknown kids caused %d key set fetches, want 1", got)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("flood took %v: refused requests waited", el)
	}
	// Genuine tokens are unaffected.
	if _, err := v.Validate(ctx, p.token(t, "", "workflows.read")); err != nil {
		t.Fatal(err)
	}
}
