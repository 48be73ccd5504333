package resource

import (
	"context"
	"testing"
)

// Trusted issuers change while serving (the admin API): a new issuer's
// tokens are accepted at once, a dropped one's are refused, an unchanged one
// keeps its key set (no refetch), and a bad list changes nothing.
func TestSetIssuersWhileServing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	own := newOwnSetup(t)
	keyA, keyB := newECKey(t, "a1"), newRSAKey(t, "b1")
	a, b := newGoIssuer(t, keyA), newGoIssuer(t, keyB)
	cfgA := IssuerConfig{Name: "alpha", Issuer: a.iss, Audience: "api://flowgate"}
	cfgB := IssuerConfig{Name: "beta", Issuer: b.iss, Audience: "api://flowgate"}

	v, err := newTestValidator(ctx, own.own, []IssuerConfig{cfgA}, Options{Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	tokA := keyA.sign(t, claimsFor(a.iss, "api://flowgate", "u1"))
	tokB := keyB.sign(t, claimsFor(b.iss, "api://flowgate", "u2"))
	if _, err := v.Validate(ctx, tokA); err != nil {
		t.Fatalf("alpha before change: %v", err)
	}
	_, err = v.Validate(ctx, tokB)
	wantTokenError(t, err, CodeInvalidToken, "unknown issuer")

	hitsA := a.jwksHits.Load()
	if err := v.SetIssuers([]IssuerConfig{cfgA, cfgB}); err != nil {
		t.Fatal(err)
	}
	if p, err := v.Validate(ctx, tokB); err != nil || p.ID != "beta:u2" {
		t.Fatalf("beta after adding it: %v %v", p, err)
	}
	if _, err := v.Validate(ctx, tokA); err != nil {
		t.Fatalf("alpha after adding beta: %v", err)
	}
	if got := a.jwksHits.Load(); got != hitsA {
		t.Fatalf("unchanged issuer refetched its keys: %d → %d fetches", hitsA, got)
	}
	if n := len(v.Status()); n != 3 {
		t.Fatalf("Status has %d entries, want own + 2", n)
	}

	if err := v.SetIssuers([]IssuerConfig{cfgB, {Name: "beta", Issuer: "https://other.example", Audience: "x"}}); err == nil {
		t.Fatal("a duplicate name was accepted")
	}
	if _, err := v.Validate(ctx, tokA); err != nil {
		t.Fatalf("a refused SetIssuers changed the issuers: %v", err)
	}

	if err := v.SetIssuers([]IssuerConfig{cfgB}); err != nil {
		t.Fatal(err)
	}
	_, err = v.Validate(ctx, tokA)
	wantTokenError(t, err, CodeInvalidToken, "unknown issuer")
	if _, err := v.Validate(ctx, tokB); err != nil {
		t.Fatalf("beta after dropping alpha: %v", err)
	}

	// A changed audience takes effect: the old audience is refused.
	cfgB.Audience = "api://other"
	if err := v.SetIssuers([]IssuerConfig{cfgB}); err != nil {
		t.Fatal(err)
	}
	_, err = v.Validate(ctx, tokB)
	wantTokenError(t, err, CodeInvalidToken, "audience")
}
