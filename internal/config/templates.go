package config

import (
	"fmt"
	"slices"
	"strings"
)

// Identity provider templates: what an identity_providers entry with
// template: NAME means (docs/configuration.md walks through each).
const (
	IdPTemplateEntra    = "entra"
	IdPTemplateGoogle   = "google"
	IdPTemplateOkta     = "okta"
	IdPTemplateKeycloak = "keycloak"
	IdPTemplateFlowgate = "flowgate"
)

// IdPTemplates lists the identity provider templates.
func IdPTemplates() []string {
	return []string{IdPTemplateEntra, IdPTemplateGoogle, IdPTemplateOkta, IdPTemplateKeycloak, IdPTemplateFlowgate}
}

// OAuth server templates: what an oauth_servers entry with template: NAME
// means.
const (
	OAuthTemplateMicrosoftGraph = "microsoft-graph"
	OAuthTemplateGoogle         = "google"
	OAuthTemplateGitHub         = "github"
	OAuthTemplateSalesforce     = "salesforce"
	OAuthTemplateOkta           = "okta"
	OAuthTemplateSlack          = "slack"
)

// OAuthTemplates lists the outbound OAuth server templates.
func OAuthTemplates() []string {
	return []string{OAuthTemplateMicrosoftGraph, OAuthTemplateGoogle, OAuthTemplateGitHub,
		OAuthTemplateSalesforce, OAuthTemplateOkta, OAuthTemplateSlack}
}

// templateIssuer is the issuer a template derives, "" when it derives
// none (keycloak and flowgate are wherever they were installed) or the
// tenant it needs is missing.
func (ip IdentityProvider) templateIssuer() string {
	switch ip.Template {
	case IdPTemplateEntra:
		if ip.Tenant != "" {
			return "https://login.microsoftonline.com/" + ip.Tenant + "/v2.0"
		}
	case IdPTemplateGoogle:
		return "https://accounts.google.com"
	case IdPTemplateOkta:
		if ip.Tenant != "" {
			return "https://" + strings.TrimSuffix(strings.TrimPrefix(ip.Tenant, "https://"), "/")
		}
	}
	return ""
}

// applyTemplate fills what the template decides and the entry left out:
// explicit keys always win.
func (ip IdentityProvider) applyTemplate() IdentityProvider {
	if ip.Issuer == "" {
		ip.Issuer = ip.templateIssuer()
	}
	switch ip.Template {
	case IdPTemplateEntra:
		// Entra's sub is different for every application a person signs
		// in to; oid is the same across a tenant, so a link made at
		// sign-in also matches the access tokens an app gets for the
		// API. Its group claim holds object ids; app roles are in roles.
		if ip.SubjectClaim == "" {
			ip.SubjectClaim = "oid"
		}
		if ip.RolesClaim == "" {
			ip.RolesClaim = "roles"
		}
	case IdPTemplateGoogle:
		// Google has no preferred_username; the address is the name.
		if ip.UsernameClaim == "" {
			ip.UsernameClaim = "email"
		}
	case IdPTemplateFlowgate:
		if ip.UsernameClaim == "" {
			ip.UsernameClaim = "preferred_username"
		}
	}
	return ip
}

// oauthTemplate is what an outbound template fills in.
type oauthTemplate struct {
	authorize, token, revoke string
	scopes                   []string
	params                   map[string]string
	pkce                     bool
}

// oauthTemplateFor returns the endpoints of a template for tenant (Entra's
// tenant, default "common") and domain (Salesforce's My Domain, default
// login.salesforce.com; Okta's org domain, required).
func oauthTemplateFor(name, tenant, domain string) (oauthTemplate, bool) {
	host := func(def string) string {
		d := strings.TrimSuffix(strings.TrimPrefix(domain, "https://"), "/")
		if d == "" {
			d = def
		}
		return "https://" + d
	}
	switch name {
	case OAuthTemplateMicrosoftGraph:
		t := tenant
		if t == "" {
			t = "common"
		}
		base := "https://login.microsoftonline.com/" + t + "/oauth2/v2.0"
		return oauthTemplate{authorize: base + "/authorize", token: base + "/token",
			scopes: []string{"https://graph.microsoft.com/User.Read", "offline_access"}, pkce: true}, true
	case OAuthTemplateGoogle:
		// access_type=offline is how Google hands out a refresh token.
		return oauthTemplate{authorize: "https://accounts.google.com/o/oauth2/v2/auth", token: "https://oauth2.googleapis.com/token",
			revoke: "https://oauth2.googleapis.com/revoke", scopes: []string{"openid", "email"},
			params: map[string]string{"access_type": "offline"}, pkce: true}, true
	case OAuthTemplateGitHub:
		// GitHub is OAuth 2.0 without discovery; its token answer has no
		// expires_in unless the app uses expiring tokens.
		return oauthTemplate{authorize: "https://github.com/login/oauth/authorize", token: "https://github.com/login/oauth/access_token",
			scopes: []string{"read:user"}, pkce: true}, true
	case OAuthTemplateSalesforce:
		h := host("login.salesforce.com")
		return oauthTemplate{authorize: h + "/services/oauth2/authorize", token: h + "/services/oauth2/token",
			revoke: h + "/services/oauth2/revoke", scopes: []string{"api", "refresh_token"}, pkce: true}, true
	case OAuthTemplateOkta:
		if domain == "" {
			return oauthTemplate{}, true
		}
		h := host("") + "/oauth2/v1"
		return oauthTemplate{authorize: h + "/authorize", token: h + "/token", revoke: h + "/revoke",
			scopes: []string{"openid", "offline_access"}, pkce: true}, true
	case OAuthTemplateSlack:
		return oauthTemplate{authorize: "https://slack.com/oauth/v2/authorize", token: "https://slack.com/api/oauth.v2.access",
			scopes: []string{"chat:write"}, pkce: false}, true
	}
	return oauthTemplate{}, false
}

// applyTemplate fills endpoints, scopes and parameters from the server's
// template where the entry left them out.
func (s OAuthServer) applyTemplate() OAuthServer {
	t, ok := oauthTemplateFor(s.Template, s.Tenant, s.Domain)
	if !ok {
		return s
	}
	// An entry that names its metadata URL takes its endpoints from there.
	if s.MetadataURL == "" {
		if s.AuthorizationEndpoint == "" {
			s.AuthorizationEndpoint = t.authorize
		}
		if s.TokenEndpoint == "" {
			s.TokenEndpoint = t.token
		}
		if s.RevocationEndpoint == "" {
			s.RevocationEndpoint = t.revoke
		}
	}
	if len(s.Scopes) == 0 {
		s.Scopes = slices.Clone(t.scopes)
	}
	for k, v := range t.params {
		if _, set := s.Params[k]; !set {
			if s.Params == nil {
				s.Params = map[string]string{}
			}
			s.Params[k] = v
		}
	}
	if !t.pkce {
		s.UsePKCE = false
	}
	return s
}

// checkTemplate is for a template key: one of names, or empty.
func checkTemplate(names []string) func(string) error {
	return func(s string) error {
		if s == "" || slices.Contains(names, s) {
			return nil
		}
		return fmt.Errorf("unknown template %q; one of: %s", s, strings.Join(names, ", "))
	}
}
