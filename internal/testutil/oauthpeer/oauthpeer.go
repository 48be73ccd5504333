// Package oauthpeer starts test/peers/oidc-provider/outbound.js, an
// independent OAuth provider (panva/node-oidc-provider) that Flowgate's
// outbound OAuth code is tested against: client credentials with three
// client authentication methods, user login through the provider's own
// pages, refresh tokens rotated on every use with reuse detection, and
// revocation. Tests only.
package oauthpeer

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil/syncbuf"
)

// Clients the peer registers (see outbound.js).
const (
	BasicClient = "basic-client"
	BasicSecret = "basic-secret"
	PostClient  = "post-client"
	PostSecret  = "post-secret"
	// JWTClient exists when Options.PKJWTJWKS is set.
	JWTClient = "jwt-client"
	// DPoPClient must send DPoP proofs to the token endpoint: its
	// tokens are DPoP-bound (client_secret_basic).
	DPoPClient = "dpop-client"
	DPoPSecret = "dpop-secret"
	// DPoPEchoPath is the peer's protected resource for DPoP-bound
	// tokens (see outbound.js).
	DPoPEchoPath = "/api/dpop-echo"
)

// Options configure the peer.
type Options struct {
	// Port to listen on; 0 picks a free one. Restarting a stopped peer on
	// the port it had keeps its issuer (but not its grants).
	Port int
	// AccessTTL is the access token lifetime; one hour when zero.
	AccessTTL time.Duration
	// PKJWTJWKS is the public JWKS ({"keys":[…]}) of jwt-client.
	PKJWTJWKS string
	// RedirectURI is the code-flow clients' redirect URI.
	RedirectURI string
	// Script is the peer to run, outbound.js when empty; upstream.js is
	// the identity provider of federation (StartUpstream).
	Script string
	// Env is added to the peer's environment.
	Env []string
	// DPoPNonce makes the token endpoint and the DPoP resource ask for
	// server nonces.
	DPoPNonce bool
}

// Stats are the peer's counters.
type Stats struct {
	RefreshGrants           int `json:"refresh_grants"`
	RefreshErrors           int `json:"refresh_errors"`
	CodeGrants              int `json:"code_grants"`
	ClientCredentialsGrants int `json:"client_credentials_grants"`
	Revocations             int `json:"revocations"`
	Grants                  int `json:"grants"`
	DPoPAPICalls            int `json:"dpop_api_calls"`
	DPoPAPIRefusals         int `json:"dpop_api_refusals"`
}

// Peer is a running provider.
type Peer struct {
	// Issuer is the provider's issuer URL; Issuer +
	// "/.well-known/openid-configuration" is its metadata.
	Issuer string
	// Port is the port it listens on.
	Port int

	opts   Options
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *syncbuf.Buffer
}

// Start starts the peer and stops it when the test ends. Without Node.js
// or the peer's node_modules the test is skipped, or fails when CI=true.
func Start(t testing.TB, opts Options) *Peer {
	t.Helper()
	p := &Peer{opts: opts}
	p.start(t)
	t.Cleanup(p.Stop)
	return p
}

// MetadataURL is the peer's discovery document.
func (p *Peer) MetadataURL() string { return p.Issuer + "/.well-known/openid-configuration" }

func (p *Peer) start(t testing.TB) {
	t.Helper()
	node, dir := peerPrerequisites(t)
	var errs []error
	for range reliableAttempts {
		err := p.tryStart(node, dir, reliableReadyTimeout)
		if err == nil {
			return
		}
		errs = append(errs, err)
	}
	t.Fatalf("outbound oidc-provider peer: %v", errors.Join(errs...))
}

// Stop kills the peer (the provider is then unreachable) and waits for it
// to exit. Stopping a stopped peer does nothing.
func (p *Peer) Stop() {
	if p.cmd == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Restart starts a stopped peer again on the same port, so the issuer
// stays the same. Its grants and counters start empty.
func (p *Peer) Restart(t testing.TB) {
	t.Helper()
	p.Stop()
	p.start(t)
}

// Stats reads the peer's counters.
func (p *Peer) Stats(t testing.TB) Stats {
	t.Helper()
	var s Stats
	p.admin(t, http.MethodGet, "/admin/stats", &s)
	return s
}

// RevokeGrants revokes every grant issued so far, as a user withdrawing
// consent at the provider would: their refresh tokens then get
// invalid_grant.
func (p *Peer) RevokeGrants(t testing.TB) {
	t.Helper()
	p.admin(t, http.MethodPost, "/admin/revoke-grants", nil)
}

func (p *Peer) admin(t testing.TB, method, path string, out any) {
	t.Helper()
	req, err := http.NewRequest(method, p.Issuer+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("peer %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("peer %s %s: HTTP %d: %s", method, path, resp.StatusCode, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("peer %s %s: %v", method, path, err)
		}
	}
}

// Stderr is what the peer wrote to stderr, for failure messages.
func (p *Peer) Stderr() string { return p.stderr.String() }
