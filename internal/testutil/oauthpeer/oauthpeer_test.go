package oauthpeer_test

import (
	"testing"

	"github.com/flowgate/flowgate/internal/testutil/oauthpeer"
)

func TestStartAndRestart(t *testing.T) {
	p := oauthpeer.Start(t, oauthpeer.Options{})
	if s := p.Stats(t); s.RefreshGrants != 0 {
		t.Fatalf("fresh peer stats %+v", s)
	}
	iss := p.Issuer
	p.Restart(t)
	if p.Issuer != iss {
		t.Fatalf("restart moved the issuer: %s -> %s", iss, p.Issuer)
	}
	p.Stop()
	p.Stop()
}
