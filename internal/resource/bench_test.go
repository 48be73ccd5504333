package resource

import (
	"testing"
)

// BenchmarkValidate measures one full validation (routing, signature, claims, principal) per
// op. External issuers use a key set already fetched, as in steady state. "cached" repeats
// one token, as a client does until it expires; "uncached" has the cache switched off, the
// cost of a token's first use.
func BenchmarkValidate(b *testing.B) {
	for _, mode := range []struct {
		name string
		size int
	}{{"cached", 0}, {"uncached", -1}} {
		b.Run(mode.name, func(b *testing.B) { benchmarkValidate(b, mode.size) })
	}
}

func benchmarkValidate(b *testing.B, cacheSize int) {
	rsaKey, ecKey := newRSAKey(b, "rsa-1"), newECKey(b, "ec-1")
	gi := newGoIssuer(b, rsaKey, ecKey)
	s := newOwnSetup(b, rsaKey, ecKey)
	s.own.Revoked = nil // the store is not what is measured
	v, err := newTestValidator(b.Context(), s.own, []IssuerConfig{{Name: "ext", Issuer: gi.iss, Audience: "api://flowgate",
		ScopeMap: map[string]string{"ext.read": "workflows.read"}}}, Options{Logger: quietLogger(b), TokenCacheSize: cacheSize})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name     string
		key      testKey
		iss, aud string
	}{
		{"own/RS256", rsaKey, ownIss, ownIss},
		{"own/ES256", ecKey, ownIss, ownIss},
		{"external/RS256", rsaKey, gi.iss, "api://flowgate"},
		{"external/ES256", ecKey, gi.iss, "api://flowgate"},
	} {
		c := claimsFor(bc.iss, bc.aud, "alice")
		c["client_id"], c["scope"], c["roles"] = "portal", "openid workflows.read ext.read", []string{"approver"}
		raw := bc.key.sign(b, c)
		b.Run(bc.name, func(b *testing.B) {
			ctx := b.Context()
			if _, err := v.Validate(ctx, raw); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Validate(ctx, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
