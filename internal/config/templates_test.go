package config

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

// TestIdPTemplates: each identity provider template derives the documented
// issuer and claim defaults, and explicit keys win.
func TestIdPTemplates(t *testing.T) {
	cases := []struct {
		in                              IdentityProvider
		issuer, subject, roles, usernme string
	}{
		{IdentityProvider{Template: "entra", Tenant: "contoso.onmicrosoft.com"}, "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0", "oid", "roles", "preferred_username"},
		{IdentityProvider{Template: "google"}, "https://accounts.google.com", "sub", "groups", "email"},
		{IdentityProvider{Template: "okta", Tenant: "example.okta.com"}, "https://example.okta.com", "sub", "groups", "preferred_username"},
		{IdentityProvider{Template: "keycloak", Issuer: "https://kc.example/realms/corp"}, "https://kc.example/realms/corp", "sub", "groups", "preferred_username"},
		{IdentityProvider{Template: "flowgate", Issuer: "https://other.example"}, "https://other.example", "sub", "groups", "preferred_username"},
		// Explicit keys win over the template.
		{IdentityProvider{Template: "google", Issuer: "https://accounts.google.com", UsernameClaim: "name"}, "https://accounts.google.com", "sub", "groups", "name"},
		{IdentityProvider{Template: "entra", Tenant: "t", RolesClaim: "groups"}, "https://login.microsoftonline.com/t/v2.0", "oid", "groups", "preferred_username"},
	}
	for _, tc := range cases {
		in := tc.in
		in.Name, in.ClientID, in.ClientSecret = "p", "id", "secret"
		if err := in.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", in.Template, err)
			continue
		}
		got := in.WithDefaults()
		if got.Issuer != tc.issuer || got.SubjectClaim != tc.subject || got.RolesClaim != tc.roles || got.UsernameClaim != tc.usernme ||
			got.MetadataURL != tc.issuer+"/.well-known/openid-configuration" || !slices.Equal(got.Scopes, []string{"openid", "profile", "email"}) {
			t.Errorf("%s: got issuer %q subject %q roles %q username %q metadata %q scopes %v", in.Template, got.Issuer, got.SubjectClaim, got.RolesClaim, got.UsernameClaim, got.MetadataURL, got.Scopes)
		}
	}
	for _, tc := range []struct {
		in   IdentityProvider
		want string
	}{
		{IdentityProvider{Template: "entra"}, "tenant: is required with template entra"},
		{IdentityProvider{Template: "entra", Tenant: "common"}, "must be your tenant id"},
		{IdentityProvider{Template: "okta"}, "tenant: is required with template okta"},
		{IdentityProvider{Template: "keycloak"}, "issuer: is required"},
		{IdentityProvider{Template: "auth0"}, `unknown template "auth0"`},
	} {
		in := tc.in
		in.Name, in.ClientID, in.ClientSecret = "p", "id", "secret"
		if err := in.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: Validate = %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestOAuthTemplates: each outbound template expands to the documented
// endpoints and scopes; explicit keys win.
func TestOAuthTemplates(t *testing.T) {
	cases := []struct {
		in                       OAuthServer
		authorize, token, revoke string
		scopes                   []string
		params                   map[string]string
		pkce                     bool
	}{
		{OAuthServer{Template: "microsoft-graph", Tenant: "t1"}, "https://login.microsoftonline.com/t1/oauth2/v2.0/authorize",
			"https://login.microsoftonline.com/t1/oauth2/v2.0/token", "", []string{"https://graph.microsoft.com/User.Read", "offline_access"}, nil, true},
		{OAuthServer{Template: "microsoft-graph"}, "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
			"https://login.microsoftonline.com/common/oauth2/v2.0/token", "", []string{"https://graph.microsoft.com/User.Read", "offline_access"}, nil, true},
		{OAuthServer{Template: "google"}, "https://accounts.google.com/o/oauth2/v2/auth", "https://oauth2.googleapis.com/token",
			"https://oauth2.googleapis.com/revoke", []string{"openid", "email"}, map[string]string{"access_type": "offline"}, true},
		{OAuthServer{Template: "github"}, "https://github.com/login/oauth/authorize", "https://github.com/login/oauth/access_token", "",
			[]string{"read:user"}, nil, true},
		{OAuthServer{Template: "salesforce"}, "https://login.salesforce.com/services/oauth2/authorize", "https://login.salesforce.com/services/oauth2/token",
			"https://login.salesforce.com/services/oauth2/revoke", []string{"api", "refresh_token"}, nil, true},
		{OAuthServer{Template: "salesforce", Domain: "acme.my.salesforce.com"}, "https://acme.my.salesforce.com/services/oauth2/authorize",
			"https://acme.my.salesforce.com/services/oauth2/token", "https://acme.my.salesforce.com/services/oauth2/revoke", []string{"api", "refresh_token"}, nil, true},
		{OAuthServer{Template: "okta", Domain: "example.okta.com"}, "https://example.okta.com/oauth2/v1/authorize", "https://example.okta.com/oauth2/v1/token",
			"https://example.okta.com/oauth2/v1/revoke", []string{"openid", "offline_access"}, nil, true},
		{OAuthServer{Template: "slack"}, "https://slack.com/oauth/v2/authorize", "https://slack.com/api/oauth.v2.access", "", []string{"chat:write"}, nil, false},
		// Explicit keys win.
		{OAuthServer{Template: "github", Scopes: []string{"repo"}, TokenEndpoint: "https://ghe.example/login/oauth/access_token"},
			"https://github.com/login/oauth/authorize", "https://ghe.example/login/oauth/access_token", "", []string{"repo"}, nil, true},
		{OAuthServer{Template: "google", Params: map[string]string{"access_type": "online"}}, "https://accounts.google.com/o/oauth2/v2/auth",
			"https://oauth2.googleapis.com/token", "https://oauth2.googleapis.com/revoke", []string{"openid", "email"}, map[string]string{"access_type": "online"}, true},
	}
	for _, tc := range cases {
		in := tc.in
		in.Name, in.ClientID, in.ClientSecret, in.UsePKCE = "s", "id", "secret", true
		if err := in.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", in.Template, err)
			continue
		}
		got := in.WithDefaults()
		if got.AuthorizationEndpoint != tc.authorize || got.TokenEndpoint != tc.token || got.RevocationEndpoint != tc.revoke ||
			got.RefreshEndpoint != tc.token || !slices.Equal(got.Scopes, tc.scopes) || !maps.Equal(got.Params, tc.params) || got.UsePKCE != tc.pkce {
			t.Errorf("%s: got %+v", in.Template, got)
		}
	}
	bad := OAuthServer{Name: "s", ClientID: "id", ClientSecret: "x", Template: "okta"}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "domain: is required with template okta") {
		t.Errorf("okta without domain: %v", err)
	}
}

// TestLoginKeys: auth.login is checked against the identity providers.
func TestLoginKeys(t *testing.T) {
	_, err := Parse([]byte("auth:\n  login:\n    local: false\n    default_identity_provider: corp\n"), "t.yaml")
	got := lines(err)
	want := []string{
		`t.yaml:2:3: auth.login.default_identity_provider: names no identity provider: "corp" is not in identity_providers`,
		`t.yaml:2:3: auth.login.local: false needs at least one entry in identity_providers: nobody could sign in`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	cfg, err := Parse([]byte(`
auth:
  login: {local: false, default_identity_provider: corp}
identity_providers:
  - name: corp
    template: entra
    tenant: 11111111-2222-3333-4444-555555555555
    client_id: app
    client_secret: s
    role_map: {g1: approver}
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ip := cfg.IdentityProviders[0]
	if cfg.Auth.Login.Local || cfg.Auth.Login.DefaultIdentityProvider != "corp" || ip.Issuer != "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0" ||
		!ip.CreateUsers || ip.LinkBy != "email" || ip.Title != "corp" || ip.RoleMap["g1"] != "approver" {
		t.Errorf("parsed %+v %+v", cfg.Auth.Login, ip)
	}
}
