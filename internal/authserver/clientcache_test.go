package authserver

import (
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/flowgate/flowgate/internal/credential"
)

// Client records are cached for authentication, but for clientTTL at most:
// a removed client, or a secret rotated elsewhere (another server, the
// CLI), is refused within that time.
func TestClientChangesTakeEffectWithinTTL(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	ctx := t.Context()
	cc := &clientcredentials.Config{ClientID: "portal", ClientSecret: portalSecret, TokenURL: e.issuer + PathToken, AuthStyle: oauth2.AuthStyleInHeader}
	if _, err := cc.Token(ctx); err != nil {
		t.Fatal(err)
	}

	// Rotate the secret behind the server's back, as another server would.
	c, err := e.st.GetClient(ctx, "portal")
	if err != nil {
		t.Fatal(err)
	}
	newSecret, hash, err := credential.NewClientSecret(e.ring)
	if err != nil {
		t.Fatal(err)
	}
	c.SecretHash = hash
	if err := e.st.UpdateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	deadline := changed.Add(clientTTL + 500*time.Millisecond)
	for {
		if _, err := cc.Token(ctx); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old secret still works %v after rotation (TTL %v)", time.Since(changed), clientTTL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fresh := &clientcredentials.Config{ClientID: "portal", ClientSecret: newSecret, TokenURL: e.issuer + PathToken, AuthStyle: oauth2.AuthStyleInHeader}
	if _, err := fresh.Token(ctx); err != nil {
		t.Fatalf("the new secret: %v", err)
	}

	// Remove the client: refused within the TTL.
	if err := e.st.DeleteClient(ctx, "portal"); err != nil {
		t.Fatal(err)
	}
	changed = time.Now()
	deadline = changed.Add(clientTTL + 500*time.Millisecond)
	for {
		if _, err := fresh.Token(ctx); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a removed client still gets tokens %v after removal", time.Since(changed))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
