package api_test

import (
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/egress"
)

// TestAdminTestsUnderEgressPolicy: the trusted issuer and OAuth server
// tests fetch admin-set URLs, so they go through the egress policy; under
// the default one a server on 127.0.0.1 is refused and the result says so.
func TestAdminTestsUnderEgressPolicy(t *testing.T) {
	e := newFlowEnv(t, flowOpts{egress: egress.Default()})
	idp := metadataServer(t, "", 1)
	denied := "egress denied: " + idp.Listener.Addr().String() + " (loopback) is not allowed by the egress policy"

	want(t, e.as("POST", "/api/v1/admin/trusted-issuers", map[string]any{"name": "local", "issuer": idp.URL, "audience": "api://flowgate"}), 201, "", "")
	m := want(t, e.as("POST", "/api/v1/admin/trusted-issuers/local/test", nil), 200, "", "")
	if m["ok"] != false || !strings.HasPrefix(m["error"].(string), "metadata: ") || !strings.Contains(m["error"].(string), denied) {
		t.Errorf("issuer test = %v, want the refusal %q", m, denied)
	}

	e.oauthServer(map[string]any{"name": "local", "metadata_url": idp.URL + "/.well-known/openid-configuration", "client_id": "c", "client_secret": "s"})
	m = want(t, e.as("POST", "/api/v1/admin/oauth-servers/local/test", nil), 200, "", "")
	// Retrying cannot help: the entry (or the policy) must change.
	if m["ok"] != false || m["error_kind"] != "configuration" || !strings.Contains(m["error"].(string), denied) {
		t.Errorf("OAuth server test = %v, want a configuration error with %q", m, denied)
	}
}
