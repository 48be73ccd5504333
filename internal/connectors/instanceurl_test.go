package connectors_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil/syncbuf"
)

// salesforceAnswer is a token answer the way Salesforce words it: no
// expires_in, the org's API base in instance_url, and an identity URL,
// issued_at and signature besides.
func salesforceAnswer(instanceURL string) string {
	return `{"access_token":"00Dxx!sf-access-secret","instance_url":` + instanceURL +
		`,"id":"https://login.salesforce.com/id/00Dxx0000001gPL/005xx000001Sv6A","token_type":"Bearer",` +
		`"issued_at":"1765000000000","signature":"0CmxinZir53Yex7nE0TD+zMpvIWYGb/bdJh6XfOH6EQ=","refresh_token":"5Aep-sf-refresh-secret"}`
}

// TestInstanceURL: a provider's instance_url comes out of every grant as
// Token.InstanceURL when it is a plain https URL, and is dropped, with a
// log line that holds no token, when it is anything else.
func TestInstanceURL(t *testing.T) {
	f := newFakeProvider(t)
	var logs syncbuf.Buffer
	c := newClient(t, store.OAuthServer{Name: "salesforce", TokenEndpoint: f.URL + "/token", ClientID: "cid", ClientSecret: "sf-client-secret"},
		connectors.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := testCtx(t)

	f.answer(http.StatusOK, "", salesforceAnswer(`"https://acme.my.salesforce.com/"`))
	for name, get := range map[string]func() (connectors.Token, error){
		"client credentials": func() (connectors.Token, error) { return c.ClientCredentials(ctx, []string{"api"}) },
		"exchange":           func() (connectors.Token, error) { return c.Exchange(ctx, "code", "", nil) },
		"refresh":            func() (connectors.Token, error) { return c.Refresh(ctx, "5Aep-sf-refresh-secret") },
	} {
		tok, err := get()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tok.InstanceURL != "https://acme.my.salesforce.com" {
			t.Errorf("%s: InstanceURL = %q, want https://acme.my.salesforce.com (trailing slash removed)", name, tok.InstanceURL)
		}
		// No expires_in: the default lifetime.
		if tok.ExpiresIn != int64(connectors.DefaultLifetime/time.Second) {
			t.Errorf("%s: ExpiresIn = %d", name, tok.ExpiresIn)
		}
	}
	if logs.String() != "" {
		t.Errorf("a good instance_url was logged: %s", logs.String())
	}

	f.answer(http.StatusOK, "", `{"access_token":"plain-access-secret","token_type":"Bearer"}`)
	if tok, err := c.ClientCredentials(ctx, []string{"api"}); err != nil || tok.InstanceURL != "" {
		t.Errorf("an answer without instance_url: %q, %v", tok.InstanceURL, err)
	}

	for _, bad := range []string{
		`"http://acme.my.salesforce.com"`,
		`"javascript:alert(1)"`,
		`"https://user:pw@acme.my.salesforce.com"`,
		`"https://acme.my.salesforce.com?x=1"`,
		`"https://acme.my.salesforce.com#frag"`,
		`"https:///services"`,
		`"/services/data"`,
		`""`,
		`42`,
		`["https://acme.my.salesforce.com"]`,
	} {
		before := len(logs.String())
		f.answer(http.StatusOK, "", salesforceAnswer(bad))
		tok, err := c.ClientCredentials(ctx, []string{"api"})
		if err != nil {
			t.Errorf("instance_url %s: the token itself was refused: %v", bad, err)
			continue
		}
		if tok.InstanceURL != "" {
			t.Errorf("instance_url %s: kept as %q", bad, tok.InstanceURL)
		}
		if tok.AccessToken != "00Dxx!sf-access-secret" {
			t.Errorf("instance_url %s: access token %q lost", bad, tok.AccessToken)
		}
		line := logs.String()[before:]
		if !strings.Contains(line, "instance_url dropped") || !strings.Contains(line, "server=salesforce") {
			t.Errorf("instance_url %s: log = %q, want a line naming the server", bad, line)
		}
		notIn(t, "the log", line, "00Dxx!sf-access-secret", "5Aep-sf-refresh-secret", "sf-client-secret")
	}
}
