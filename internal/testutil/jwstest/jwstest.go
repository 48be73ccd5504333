// Package jwstest makes the variants of a signed token that tests present to every reader of
// a JWS, to check that a token is accepted only in the spelling that was signed.
package jwstest

import (
	"encoding/base64"
	"slices"
	"strings"
)

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// Respellings returns every other spelling of a compact JWS that a lenient base64url decoder
// reads as the same bytes: for each part, its last character with its unused low bits set
// otherwise (a part of 2 or 3 characters past a multiple of 4 has 4 or 2 such bits; an ES256
// or RS256 signature has 4, so 15 respellings), and the token with a line break in the
// signature.
func Respellings(raw string) []string {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		panic("jwstest: not a compact JWS")
	}
	var out []string
	for i, seg := range parts {
		unused := map[int]int{2: 0x0f, 3: 0x03}[len(seg)%4]
		if unused == 0 {
			continue // no unused bits: this part has one spelling only
		}
		v := strings.IndexByte(alphabet, seg[len(seg)-1])
		want, err := base64.RawURLEncoding.DecodeString(seg)
		if err != nil || v < 0 || v&unused != 0 {
			panic("jwstest: part " + seg + " is not canonical base64url")
		}
		for bits := 1; bits <= unused; bits++ {
			p := slices.Clone(parts)
			p[i] = seg[:len(seg)-1] + string(alphabet[v|bits])
			if got, err := base64.RawURLEncoding.DecodeString(p[i]); err != nil || string(got) != string(want) {
				panic("jwstest: respelling " + p[i] + " does not decode to the same bytes")
			}
			out = append(out, strings.Join(p, "."))
		}
	}
	sig := strings.LastIndexByte(raw, '.') + 1
	return append(out, raw[:sig+4]+"\n"+raw[sig+4:])
}
