package authserver

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"github.com/zitadel/schema"
)

// The hand-written decoding of the client-credentials requests gives what
// schema gives, for any form: names in any case, repeated and empty values,
// unknown and dotted names.
func TestFormDecoderMatchesSchema(t *testing.T) {
	ref := schema.NewDecoder()
	ref.IgnoreUnknownKeys(true)
	ours := newFormDecoder()
	names := []string{"grant_type", "GRANT_TYPE", "scope", "Scope", "client_id", "Client_ID", "client_secret",
		"client_assertion", "CLIENT_ASSERTION", "client_assertion_type", "token", "scope.0", "client_id.x", "other", ""}
	values := []string{"", "a", "b c", " a  b ", "client_credentials", "x y z", "é"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		form := map[string][]string{}
		for range rng.IntN(5) {
			// One name per case-folded field at most: with two spellings of
			// one name, which wins depends on map order, in schema too.
			n := names[rng.IntN(len(names))]
			var vs []string
			for range rng.IntN(4) {
				vs = append(vs, values[rng.IntN(len(values))])
			}
			form[n] = vs
		}
		if ambiguous(form) {
			continue
		}
		for _, mk := range []func() any{
			func() any { return new(op.ClientCredentials) },
			func() any { return new(oidc.ClientCredentialsRequest) },
		} {
			want, got := mk(), mk()
			werr := ref.Decode(want, form)
			gerr := ours.Decode(got, form)
			if (werr == nil) != (gerr == nil) || !reflect.DeepEqual(want, got) {
				t.Fatalf("case %d: form %q into %T: got %+v (%v), schema %+v (%v)", i, form, want, got, gerr, want, werr)
			}
		}
	}
}

func ambiguous(form map[string][]string) bool {
	seen := map[string]bool{}
	for k := range form {
		if seen[strings.ToLower(k)] {
			return true
		}
		seen[strings.ToLower(k)] = true
	}
	return false
}
