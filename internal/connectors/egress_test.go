package connectors_test

import (
	"errors"
	"testing"

	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/egress"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil/oauthpeer"
)

// TestDefaultClientRefusesLoopback: without a client of its own a
// connector uses the default egress policy, so discovery, the token
// endpoint and revocation cannot reach a server on 127.0.0.1; each error
// names the policy.
func TestDefaultClientRefusesLoopback(t *testing.T) {
	p := oauthpeer.Start(t, oauthpeer.Options{})
	ctx := testCtx(t)
	denied := func(what string, err error) {
		t.Helper()
		var de *egress.DeniedError
		if !errors.As(err, &de) || de.Reason != "loopback" {
			t.Errorf("%s: %v, want an egress refusal", what, err)
		}
		// Retrying cannot help: the entry must change.
		if k := connectors.KindOf(err); k != connectors.KindConfig {
			t.Errorf("%s: kind %s, want %s", what, k, connectors.KindConfig)
		}
	}
	discovered, err := connectors.New(store.OAuthServer{Name: "peer", MetadataURL: p.MetadataURL(),
		ClientID: oauthpeer.BasicClient, ClientSecret: oauthpeer.BasicSecret}, connectors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = discovered.Endpoints(ctx)
	denied("discovery", err)

	direct, err := connectors.New(store.OAuthServer{Name: "peer", TokenEndpoint: p.Issuer + "/token", RevocationEndpoint: p.Issuer + "/revoke",
		ClientID: oauthpeer.BasicClient, ClientSecret: oauthpeer.BasicSecret, Scopes: []string{"api.read"}}, connectors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = direct.ClientCredentials(ctx, nil)
	denied("token", err)
	denied("revocation", direct.Revoke(ctx, "some-token", "access_token"))
}
