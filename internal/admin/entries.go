package admin

import (
	"maps"
	"slices"
	"strings"

	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/store"
)

// The rules of an entry are the configuration's (its type's Validate and
// WithDefaults); these functions apply them to an entry built by the admin
// API or the management site, so both refuse and fill in the same way. The
// errors are the configuration's *config.FieldError values, joined, each
// naming the key to change.

// CheckClient fills the defaults of a declared client into c
// (token_endpoint_auth_method, grant_types, consent) and validates it.
// Client secrets are generated, never chosen, so the rule that a
// confidential client has one is taken as met.
func CheckClient(c *store.Client) error {
	cc := config.Client{
		ID: c.ID, Name: c.Name, RedirectURIs: c.RedirectURIs, PostLogoutRedirectURIs: c.PostLogoutRedirectURIs,
		GrantTypes: c.GrantTypes, Scopes: c.Scopes, TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
		JWKS: c.JWKS, JWKSURI: c.JWKSURI, PublicKeyPEM: c.PublicKeyPEM, Consent: c.Consent, DPoP: c.DPoP, Roles: c.Roles,
		AllowedOrigins: c.AllowedOrigins, Audiences: c.Audiences,
	}.WithDefaults()
	c.TokenEndpointAuthMethod, c.GrantTypes, c.Consent = cc.TokenEndpointAuthMethod, cc.GrantTypes, cc.Consent
	if NeedsSecret(cc.TokenEndpointAuthMethod) {
		cc.Secret = "generated"
	}
	return cc.Validate()
}

// CheckIssuer validates a trusted issuer entry and returns it with its
// defaults, as stored with the given source.
func CheckIssuer(c config.TrustedIssuer, source string) (store.TrustedIssuer, error) {
	if err := c.Validate(); err != nil {
		return store.TrustedIssuer{}, err
	}
	return IssuerFromConfig(c.WithDefaults(), source), nil
}

// IssuerFromConfig is the stored form of a trusted issuer entry.
func IssuerFromConfig(c config.TrustedIssuer, source string) store.TrustedIssuer {
	return store.TrustedIssuer{
		Name: c.Name, Issuer: c.Issuer, MetadataURL: c.MetadataURL, Audience: c.Audience,
		SubjectClaim: c.SubjectClaim, ScopeClaim: c.ScopeClaim, RolesClaim: c.RolesClaim,
		ScopeMap: maps.Clone(c.ScopeMap), Source: source,
	}
}

// CheckOAuthServer validates an OAuth server entry and returns it with its
// defaults, as stored with the given source. An entry without
// redirect_uri gets publicURL + "/oauth-callback" (when publicURL is
// set), as in the configuration file.
func CheckOAuthServer(c config.OAuthServer, publicURL, source string) (store.OAuthServer, error) {
	if err := c.Validate(); err != nil {
		return store.OAuthServer{}, err
	}
	c = c.WithDefaults()
	if c.RedirectURI == "" && publicURL != "" {
		c.RedirectURI = strings.TrimRight(publicURL, "/") + "/oauth-callback"
	}
	return OAuthServerFromConfig(c, source), nil
}

// OAuthServerFromConfig is the stored form of an OAuth server entry.
func OAuthServerFromConfig(c config.OAuthServer, source string) store.OAuthServer {
	return store.OAuthServer{
		Name: c.Name, MetadataURL: c.MetadataURL, AuthorizationEndpoint: c.AuthorizationEndpoint,
		TokenEndpoint: c.TokenEndpoint, RefreshEndpoint: c.RefreshEndpoint, RevocationEndpoint: c.RevocationEndpoint,
		ClientID: c.ClientID, ClientSecret: c.ClientSecret, ClientAuth: c.ClientAuth, PrivateKeyFile: c.PrivateKeyFile,
		KeyID: c.KeyID, Scopes: slices.Clone(c.Scopes), Params: maps.Clone(c.Params),
		UsePrompt: c.UsePrompt, UsePKCE: c.UsePKCE, RedirectURI: c.RedirectURI, DPoP: c.DPoP, Source: source,
	}
}
