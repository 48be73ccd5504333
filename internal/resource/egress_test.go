package resource

import (
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/egress"
)

// TestDefaultEgressRefusesIssuerOnLoopback: without a client of its own the
// validator fetches metadata under the default egress policy, so a trusted
// issuer on 127.0.0.1 is not reached, and its status says why.
func TestDefaultEgressRefusesIssuerOnLoopback(t *testing.T) {
	gi := newGoIssuer(t, newRSAKey(t, "rsa-1"))
	s := newOwnSetup(t, newECKey(t, "own-1"))
	v, err := NewValidator(t.Context(), s.own, []IssuerConfig{{Name: "local", Issuer: gi.iss, Audience: "api://flowgate"}},
		Options{Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	st := statusOf(t, v, "local")
	if st.Ready || !strings.Contains(st.Error, "egress denied: "+gi.srv.Listener.Addr().String()+" (loopback)") {
		t.Fatalf("status = %+v, want not ready with an egress refusal", st)
	}
}

// TestEgressChecksJWKSURI: the key set is fetched under the policy too. The
// metadata is read through a host name the policy allows; its jwks_uri
// names 127.0.0.1, which the policy does not.
func TestEgressChecksJWKSURI(t *testing.T) {
	gi := newGoIssuer(t, newRSAKey(t, "rsa-1"))
	s := newOwnSetup(t, newECKey(t, "own-1"))
	p, err := egress.New([]string{"localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	metadata := strings.Replace(gi.iss, "127.0.0.1", "localhost", 1) + "/.well-known/openid-configuration"
	v, err := NewValidator(t.Context(), s.own, []IssuerConfig{{Name: "local", Issuer: gi.iss, MetadataURL: metadata, Audience: "api://flowgate"}},
		Options{Logger: quietLogger(t), HTTPClient: p.Client(0)})
	if err != nil {
		t.Fatal(err)
	}
	st := statusOf(t, v, "local")
	if st.Ready || st.JWKSURI != gi.iss+"/jwks" || !strings.Contains(st.Error, "jwks: ") || !strings.Contains(st.Error, "egress denied") {
		t.Fatalf("status = %+v, want the key set refused by the egress policy", st)
	}
	if n := gi.jwksHits.Load(); n != 0 {
		t.Errorf("the key set was fetched %d times", n)
	}
}

func statusOf(t *testing.T, v *Validator, name string) IssuerStatus {
	t.Helper()
	for _, st := range v.Status() {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no status for issuer %q", name)
	return IssuerStatus{}
}
