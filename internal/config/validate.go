package config

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/flowgate/flowgate/internal/principal"
	"github.com/flowgate/flowgate/internal/yamlnode"
)

// The rules an entry of users, clients, trusted_issuers, oauth_servers or
// identity_providers must meet live in its type's Validate method, so that
// they are the same whoever built the entry: the file decoder (which adds
// the line and column), the admin API and the CLI. Validate judges an
// empty field as its default; WithDefaults fills the defaults in
// afterwards. Its errors are *FieldError values joined with errors.Join,
// each naming the key within the entry (scope_map.X, scopes[1]) without a
// file position; none quotes a secret.

// problems collects the *FieldError values of one entry.
type problems []*FieldError

func (ps *problems) add(path string, err error) {
	*ps = append(*ps, &FieldError{Path: path, Err: err})
}

func (ps *problems) addf(path, format string, args ...any) {
	ps.add(path, fmt.Errorf(format, args...))
}

// check runs the checks on a non-empty value.
func (ps *problems) check(path, value string, checks ...func(string) error) {
	if value == "" {
		return
	}
	for _, c := range checks {
		if err := c(value); err != nil {
			ps.add(path, err)
			return
		}
	}
}

// each checks every entry of a list, none of which may be empty.
func (ps *problems) each(path string, values []string, check func(string) error) {
	for i, v := range values {
		p := indexPath(path, i)
		if v == "" {
			ps.addf(p, "must not be empty")
			continue
		}
		ps.check(p, v, check)
	}
}

// eachEntry checks every entry of a mapping, in key order.
func (ps *problems) eachEntry(path string, m map[string]string, check func(k, v string) error) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if err := check(k, m[k]); err != nil {
			ps.add(joinPath(path, k), err)
		}
	}
}

func (ps *problems) require(path, value string) {
	if value == "" {
		ps.addf(path, "is required")
	}
}

// has reports a problem already found with the key at path (or one of its
// entries), so that a rule that depends on the key does not add a second,
// derived complaint (redirect_uris: [/cb] is wrong, not missing).
func (ps problems) has(path string) bool { return hasErrorAt(ps, path) }

// judgedAs is the value the rules that depend on an enumerated key judge
// an entry by: the key's default, with a note saying so, when it is empty,
// and the default too when it is not one of allowed (reported already).
func judgedAs(value string, allowed []string, def, key string) (v, note string) {
	switch {
	case value == "":
		return def, " (the default " + key + ")"
	case !slices.Contains(allowed, value):
		return def, ""
	}
	return value, ""
}

func (ps problems) err() error {
	errs := make([]error, len(ps))
	for i, e := range ps {
		errs[i] = e
	}
	return errors.Join(errs...)
}

func hasErrorAt(errs []*FieldError, path string) bool {
	return slices.ContainsFunc(errs, func(e *FieldError) bool {
		return e.Path == path || strings.HasPrefix(e.Path, path+"[")
	})
}

// Validate checks a user's username, password hash, email and roles, and
// that at most one of password and password_hash is set.
func (u User) Validate() error {
	var ps problems
	ps.check("username", u.Username, principal.CheckUsername)
	ps.check("password_hash", u.PasswordHash, checkArgon2PHC)
	ps.check("email", u.Email, checkEmail)
	ps.each("roles", u.Roles, checkRole)
	ps.require("username", u.Username)
	if u.Password != "" && u.PasswordHash != "" {
		ps.addf("password_hash", "give password or password_hash, not both")
	}
	return ps.err()
}

// Validate checks a client: each key, and the rules that tie them
// together (a secret for a confidential client, one key source for
// private_key_jwt, a redirect URI for the code flow), each error at the
// key to change. An empty token_endpoint_auth_method is judged as
// client_secret_basic, empty grant_types as [authorization_code].
func (c Client) Validate() error {
	var ps problems
	ps.check("id", c.ID, checkClientID)
	ps.each("redirect_uris", c.RedirectURIs, checkRedirectURI)
	ps.each("post_logout_redirect_uris", c.PostLogoutRedirectURIs, checkRedirectURI)
	ps.each("grant_types", c.GrantTypes, oneOf(grantTypes))
	ps.each("scopes", c.Scopes, checkScope)
	ps.check("token_endpoint_auth_method", c.TokenEndpointAuthMethod, oneOf(clientAuthMethods))
	ps.check("jwks", c.JWKS, checkJWKS)
	ps.check("jwks_uri", c.JWKSURI, checkHTTPURL)
	ps.check("public_key_pem", c.PublicKeyPEM, checkPublicKeyPEM)
	ps.check("consent", c.Consent, oneOf(consentModes))
	ps.each("roles", c.Roles, checkRole)
	ps.each("allowed_origins", c.AllowedOrigins, checkOrigin)
	ps.each("audiences", c.Audiences, checkResource)
	ps.require("id", c.ID)

	method, methodNote := judgedAs(c.TokenEndpointAuthMethod, clientAuthMethods, defaultClientAuth, "token_endpoint_auth_method")
	keySources := [][2]string{{"jwks", c.JWKS}, {"jwks_uri", c.JWKSURI}, {"public_key_pem", c.PublicKeyPEM}}
	switch method {
	case authNone:
		if c.Secret != "" {
			ps.addf("secret", "a public client (token_endpoint_auth_method none) must not have a secret")
		}
		if slices.Contains(c.GrantTypes, grantClientCreds) {
			ps.addf("grant_types", "a public client (token_endpoint_auth_method none) cannot use client_credentials")
		}
	case authBasic, authPost:
		if c.Secret == "" {
			ps.addf("secret", "is required for %s%s; use token_endpoint_auth_method: none for a public client", method, methodNote)
		}
	case authPrivateKeyJWT:
		if c.Secret != "" {
			ps.addf("secret", "is not used with private_key_jwt; remove it")
		}
		var sources []string
		for _, kv := range keySources {
			if kv[1] != "" {
				sources = append(sources, kv[0])
			}
		}
		switch {
		case len(sources) == 0:
			ps.addf("jwks", "private_key_jwt needs one of jwks, jwks_uri or public_key_pem")
		case len(sources) > 1:
			ps.addf(sources[1], "private_key_jwt takes one key source, not %s", strings.Join(sources, " and "))
		}
	}
	if method != authPrivateKeyJWT {
		for _, kv := range keySources {
			if k, v := kv[0], kv[1]; v != "" {
				ps.addf(k, "is only used with token_endpoint_auth_method private_key_jwt")
			}
		}
	}
	grants, grantNote := c.GrantTypes, ""
	if len(grants) == 0 {
		grants, grantNote = defaultGrantTypes(), " (grant_types defaults to [authorization_code])"
	}
	if slices.Contains(grants, grantCode) && len(c.RedirectURIs) == 0 && !ps.has("redirect_uris") {
		ps.addf("redirect_uris", "a client with the authorization_code grant needs at least one redirect URI%s", grantNote)
	}
	return ps.err()
}

// defaultClientAuth is the token_endpoint_auth_method of a client that
// names none, as in RFC 7591.
const defaultClientAuth = authBasic

// defaultGrantTypes are the grant types of a client that names none, as
// in RFC 7591.
func defaultGrantTypes() []string { return []string{grantCode} }

// WithDefaults fills the keys a client may leave out:
// token_endpoint_auth_method, grant_types and consent.
func (c Client) WithDefaults() Client {
	if c.TokenEndpointAuthMethod == "" {
		c.TokenEndpointAuthMethod = defaultClientAuth
	}
	if len(c.GrantTypes) == 0 {
		c.GrantTypes = defaultGrantTypes()
	}
	if c.Consent == "" {
		c.Consent = "user"
	}
	return c
}

// Validate checks a trusted issuer: its name (which starts its
// principals, so not one of Flowgate's own kinds), URLs, claims and scope
// map.
func (t TrustedIssuer) Validate() error {
	var ps problems
	ps.check("name", t.Name, checkName, notReservedPrefix)
	ps.check("issuer", t.Issuer, checkHTTPURL)
	ps.check("metadata_url", t.MetadataURL, checkHTTPURL)
	ps.check("subject_claim", t.SubjectClaim, oneOf(subjectClaims))
	ps.check("scope_claim", t.ScopeClaim, oneOf(scopeClaims))
	ps.eachEntry("scope_map", t.ScopeMap, func(k, v string) error {
		if err := checkScope(k); err != nil {
			return err
		}
		return oneOf(flowgateScopes)(v)
	})
	ps.require("name", t.Name)
	ps.require("issuer", t.Issuer)
	ps.require("audience", t.Audience)
	return ps.err()
}

// WithDefaults fills the keys a trusted issuer may leave out:
// metadata_url from the issuer, subject_claim sub, scope_claim scope,
// roles_claim roles.
func (t TrustedIssuer) WithDefaults() TrustedIssuer {
	if t.MetadataURL == "" && t.Issuer != "" {
		t.MetadataURL = discoveryURL(t.Issuer)
	}
	t.SubjectClaim = cmp.Or(t.SubjectClaim, "sub")
	t.ScopeClaim = cmp.Or(t.ScopeClaim, "scope")
	t.RolesClaim = cmp.Or(t.RolesClaim, "roles")
	return t
}

// Validate checks an outbound OAuth server: its name, URLs, scopes and
// params, an endpoint to get tokens from, and the credentials its
// client_auth needs (an empty one is judged as client_secret_basic).
func (s OAuthServer) Validate() error {
	var ps problems
	ps.check("template", s.Template, checkTemplate(OAuthTemplates()))
	if s.Template == OAuthTemplateOkta && s.Domain == "" && s.MetadataURL == "" && s.TokenEndpoint == "" {
		ps.addf("domain", "is required with template okta (your org domain, e.g. example.okta.com)")
	}
	s = s.applyTemplate()
	ps.check("name", s.Name, checkName)
	for _, kv := range [][2]string{
		{"metadata_url", s.MetadataURL}, {"authorization_endpoint", s.AuthorizationEndpoint},
		{"token_endpoint", s.TokenEndpoint}, {"refresh_endpoint", s.RefreshEndpoint},
		{"revocation_endpoint", s.RevocationEndpoint},
	} {
		ps.check(kv[0], kv[1], checkHTTPURL)
	}
	ps.check("client_auth", s.ClientAuth, oneOf(outboundAuth))
	ps.each("scopes", s.Scopes, checkScope)
	ps.eachEntry("params", s.Params, func(k, _ string) error {
		if slices.Contains(reservedParams, k) {
			return fmt.Errorf("%s is set by Flowgate itself and cannot be overridden", k)
		}
		return nil
	})
	ps.check("redirect_uri", s.RedirectURI, checkHTTPURL)
	ps.require("name", s.Name)
	ps.require("client_id", s.ClientID)
	if s.MetadataURL == "" && s.TokenEndpoint == "" && !ps.has("metadata_url") && !ps.has("token_endpoint") {
		ps.addf("metadata_url", "either metadata_url or token_endpoint is required")
	}
	auth, note := judgedAs(s.ClientAuth, outboundAuth, defaultOutboundAuth, "client_auth")
	if auth == authPrivateKeyJWT {
		if s.PrivateKeyFile == "" {
			ps.addf("private_key_file", "is required for client_auth private_key_jwt")
		}
		if s.ClientSecret != "" {
			ps.addf("client_secret", "is not used with client_auth private_key_jwt; remove it")
		}
		return ps.err()
	}
	if s.ClientSecret == "" {
		ps.addf("client_secret", "is required for client_auth %s%s", auth, note)
	}
	for _, kv := range [][2]string{{"private_key_file", s.PrivateKeyFile}, {"key_id", s.KeyID}} {
		if kv[1] != "" {
			ps.addf(kv[0], "is only used with client_auth private_key_jwt")
		}
	}
	return ps.err()
}

// defaultOutboundAuth is the client_auth of an OAuth server that names
// none.
const defaultOutboundAuth = authBasic

// WithDefaults applies the template (explicit keys win), fills client_auth and, from token_endpoint,
// refresh_endpoint. It does not fill redirect_uri, which depends on the
// public URL, nor use_prompt and use_pkce, whose zero value is a choice.
func (s OAuthServer) WithDefaults() OAuthServer {
	s = s.applyTemplate()
	s.ClientAuth = cmp.Or(s.ClientAuth, defaultOutboundAuth)
	s.RefreshEndpoint = cmp.Or(s.RefreshEndpoint, s.TokenEndpoint)
	return s
}

// Validate checks an identity provider users sign in with: its name,
// template, URLs, scopes (which must include openid), the credentials its
// client_auth needs, and the linking rules. The issuer may come from the
// template (entra with tenant, google, okta with tenant).
func (ip IdentityProvider) Validate() error {
	var ps problems
	ps.check("name", ip.Name, checkName)
	ps.check("template", ip.Template, checkTemplate(IdPTemplates()))
	ps.check("issuer", ip.Issuer, checkHTTPURL)
	ps.each("scopes", ip.Scopes, checkScope)
	ps.check("metadata_url", ip.MetadataURL, checkHTTPURL)
	ps.check("client_auth", ip.ClientAuth, oneOf(outboundAuth))
	ps.check("link_by", ip.LinkBy, oneOf([]string{"email", "none"}))
	ps.each("default_roles", ip.DefaultRoles, checkRole)
	ps.eachEntry("role_map", ip.RoleMap, func(_, v string) error { return checkRole(v) })
	ps.require("name", ip.Name)
	ps.require("client_id", ip.ClientID)
	if ip.Issuer == "" && !ps.has("template") {
		switch {
		case (ip.Template == IdPTemplateEntra || ip.Template == IdPTemplateOkta) && ip.Tenant == "":
			ps.addf("tenant", "is required with template %s (it is part of the issuer)", ip.Template)
		case ip.templateIssuer() == "":
			ps.addf("issuer", "is required")
		}
	}
	if ip.Template == IdPTemplateEntra && slices.Contains([]string{"common", "organizations", "consumers"}, ip.Tenant) {
		ps.addf("tenant", "must be your tenant id or domain: with %q the issuer of the ID tokens is not known in advance", ip.Tenant)
	}
	if len(ip.Scopes) > 0 && !slices.Contains(ip.Scopes, "openid") && !ps.has("scopes") {
		ps.addf("scopes", "must include openid: sign-in needs an ID token")
	}
	auth, note := judgedAs(ip.ClientAuth, outboundAuth, defaultOutboundAuth, "client_auth")
	if auth == authPrivateKeyJWT {
		if ip.PrivateKeyFile == "" {
			ps.addf("private_key_file", "is required for client_auth private_key_jwt")
		}
		if ip.ClientSecret != "" {
			ps.addf("client_secret", "is not used with client_auth private_key_jwt; remove it")
		}
		return ps.err()
	}
	if ip.ClientSecret == "" {
		ps.addf("client_secret", "is required for client_auth %s%s", auth, note)
	}
	for _, kv := range [][2]string{{"private_key_file", ip.PrivateKeyFile}, {"key_id", ip.KeyID}} {
		if kv[1] != "" {
			ps.addf(kv[0], "is only used with client_auth private_key_jwt")
		}
	}
	return ps.err()
}

// WithDefaults applies the template (explicit keys win) and fills the
// title, scopes (openid, profile, email), metadata URL, client_auth,
// link_by email, username_claim preferred_username, roles_claim groups
// and the subject claim sub. create_users is not filled: its zero value
// is a choice (the decoder starts it at true).
func (ip IdentityProvider) WithDefaults() IdentityProvider {
	ip = ip.applyTemplate()
	ip.Title = cmp.Or(ip.Title, ip.Name)
	if len(ip.Scopes) == 0 {
		ip.Scopes = []string{"openid", "profile", "email"}
	}
	if ip.MetadataURL == "" && ip.Issuer != "" {
		ip.MetadataURL = discoveryURL(ip.Issuer)
	}
	ip.ClientAuth = cmp.Or(ip.ClientAuth, defaultOutboundAuth)
	ip.LinkBy = cmp.Or(ip.LinkBy, "email")
	ip.UsernameClaim = cmp.Or(ip.UsernameClaim, "preferred_username")
	ip.RolesClaim = cmp.Or(ip.RolesClaim, "groups")
	ip.SubjectClaim = cmp.Or(ip.SubjectClaim, "sub")
	return ip
}

// judge adds the problems an entry's Validate found, each at the node its
// key names so that it carries a line and column. A key the decoder
// already complained about (not a string, say) is not judged again.
func (d *decoder) judge(item *yaml.Node, path string, present map[string]*yaml.Node, err error) {
	n := len(d.errs)
	for _, e := range unjoin(err) {
		var fe *FieldError
		if !errors.As(e, &fe) {
			d.fail(item, path, e)
			continue
		}
		full := joinPath(path, fe.Path)
		if hasErrorAt(d.errs[:n], full) {
			continue
		}
		d.fail(nodeAt(item, present, fe.Path), full, fe.Err)
	}
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// nodeAt finds the node a path within an entry names: a key's value
// (key), a list element (key[2]) or a mapping entry's value (key.name);
// the nearest enclosing node when it is not there (a missing key is
// reported at the entry).
func nodeAt(item *yaml.Node, present map[string]*yaml.Node, path string) *yaml.Node {
	key, rest := path, ""
	if i := strings.IndexAny(path, ".["); i >= 0 {
		key, rest = path[:i], path[i:]
	}
	v := present[key]
	if v == nil {
		return item
	}
	switch {
	case strings.HasPrefix(rest, "[") && v.Kind == yaml.SequenceNode:
		end := strings.IndexByte(rest, ']')
		if i, err := strconv.Atoi(rest[1:max(end, 1)]); err == nil && i >= 0 && i < len(v.Content) {
			return yamlnode.Resolve(v.Content[i])
		}
	case strings.HasPrefix(rest, ".") && v.Kind == yaml.MappingNode:
		for j := 0; j+1 < len(v.Content); j += 2 {
			if yamlnode.Resolve(v.Content[j]).Value == rest[1:] {
				return yamlnode.Resolve(v.Content[j+1])
			}
		}
	}
	return v
}

// texts decodes a list of strings for Validate to judge, keeping every
// element in its place: a null one becomes "" (which Validate calls
// empty), one that is not a string is reported here and left "".
func (d *decoder) texts(dst *[]string) setter {
	return func(n *yaml.Node, path string) {
		var out []string
		d.list(n, path, func(v *yaml.Node, p string) {
			s, _ := d.scalar(v, p)
			out = append(out, s)
		})
		if out != nil {
			*dst = out
		}
	}
}
