package resource

import (
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkLibraryFloor is what golang-jwt/jwt/v5 and crypto cost on their own (a bare
// signature check, and ParseWithClaims with jwt.RegisteredClaims and a fixed key), to read
// BenchmarkValidate against.
func BenchmarkLibraryFloor(b *testing.B) {
	for _, k := range []testKey{newRSAKey(b, "r"), newECKey(b, "e")} {
		c := claimsFor("https://x", "https://x", "alice")
		raw := k.sign(b, c)
		b.Run(k.method.Alg()+"/verify", func(b *testing.B) {
			i := strings.LastIndex(raw, ".")
			sig, _ := jwt.NewParser().DecodeSegment(raw[i+1:])
			b.ReportAllocs()
			for b.Loop() {
				if err := k.method.Verify(raw[:i], sig, k.pub); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(k.method.Alg()+"/parse-registered", func(b *testing.B) {
			p := jwt.NewParser(jwt.WithValidMethods([]string{"RS256", "ES256"}), jwt.WithIssuer("https://x"), jwt.WithAudience("https://x"))
			kf := func(*jwt.Token) (any, error) { return k.pub, nil }
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.ParseWithClaims(raw, &jwt.RegisteredClaims{}, kf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
