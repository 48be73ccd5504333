package config

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/flowgate/flowgate/internal/yamlnode"
)

// parse decodes and validates a file. It reports whether the file set the
// public URL, which decides whether Load derives it from the address.
func parse(data []byte, filename string) (cfg *Config, publicURLSet bool, errs []error) {
	if filename == "" {
		filename = "config"
	}
	cfg = Default()
	d := &decoder{file: filename}
	root, extra, err := yamlnode.Document(data)
	if err != nil {
		fe := &FieldError{File: filename, Err: err}
		if se := (*yamlnode.SyntaxError)(nil); errors.As(err, &se) {
			fe.Line = se.Line
		}
		return nil, false, []error{fe}
	}
	if extra != nil {
		d.failf(extra, "", "a configuration file holds one YAML document; remove the second ---")
	}
	if root != nil {
		publicURLSet = d.root(root, cfg)
	}
	if len(d.errs) == 0 {
		return cfg, publicURLSet, nil
	}
	// Cross-field checks run after their section, so sort to read the
	// report top to bottom like the file.
	slices.SortStableFunc(d.errs, func(a, b *FieldError) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	for _, e := range d.errs {
		errs = append(errs, e)
	}
	return nil, false, errs
}

func (d *decoder) root(n *yaml.Node, c *Config) (publicURLSet bool) {
	var flowsSet bool
	present, _ := d.object(n, "", map[string]setter{
		"server": func(v *yaml.Node, p string) { publicURLSet = d.server(v, p, &c.Server) },
		"database": func(v *yaml.Node, p string) {
			if s, ok := d.scalar(v, p); ok {
				if err := checkDatabase(s); err != nil {
					d.fail(v, p, err)
				}
				c.Database = s
			}
		},
		"secrets": func(v *yaml.Node, p string) {
			d.object(v, p, map[string]setter{"key_file": d.str(&c.Secrets.KeyFile)})
		},
		"auth":               func(v *yaml.Node, p string) { d.auth(v, p, &c.Auth) },
		"users":              func(v *yaml.Node, p string) { c.Users = d.users(v, p) },
		"clients":            func(v *yaml.Node, p string) { c.Clients = d.clients(v, p) },
		"trusted_issuers":    func(v *yaml.Node, p string) { c.TrustedIssuers = d.trustedIssuers(v, p) },
		"oauth_servers":      func(v *yaml.Node, p string) { c.OAuthServers = d.oauthServers(v, p) },
		"identity_providers": func(v *yaml.Node, p string) { c.IdentityProviders = d.identityProviders(v, p) },
		"apis": func(v *yaml.Node, p string) {
			d.object(v, p, map[string]setter{
				"workflow":   d.boolean(&c.APIs.Workflow),
				"invoke":     d.boolean(&c.APIs.Invoke),
				"basic_auth": d.boolean(&c.APIs.BasicAuth),
			})
		},
		"egress": func(v *yaml.Node, p string) {
			d.object(v, p, map[string]setter{
				"allow": d.strs(&c.Egress.Allow, checkEgressEntry),
				"deny":  d.strs(&c.Egress.Deny, checkEgressEntry),
			})
		},
		"limits": func(v *yaml.Node, p string) {
			d.object(v, p, map[string]setter{
				"max_steps": d.positiveInt(&c.Limits.MaxSteps),
				"max_vars":  d.size(&c.Limits.MaxVars),
			})
		},
		"flows": func(v *yaml.Node, p string) {
			if s, ok := d.scalar(v, p); ok && s != "" {
				c.Flows, flowsSet = s, true
			}
		},
	})
	// Only a folder someone asked for must exist: the default ./flows is
	// optional so that a bare `flowgate serve` starts anywhere.
	if flowsSet {
		if _, err := os.Stat(c.Flows); err != nil {
			d.fail(present["flows"], "flows", fmt.Errorf("%w", err))
		}
	}
	return publicURLSet
}

func (d *decoder) server(n *yaml.Node, path string, s *Server) (publicURLSet bool) {
	d.object(n, path, map[string]setter{
		"addr": d.str(&s.Addr, checkAddr),
		"public_url": func(v *yaml.Node, p string) {
			raw, ok := d.scalar(v, p)
			if !ok || raw == "" {
				return
			}
			u, err := normalizePublicURL(raw)
			if err != nil {
				d.fail(v, p, err)
				return
			}
			s.PublicURL, publicURLSet = u, true
		},
	})
	return publicURLSet
}

func (d *decoder) auth(n *yaml.Node, path string, a *Auth) {
	d.object(n, path, map[string]setter{
		"access_token_ttl":  d.duration(&a.AccessTokenTTL),
		"id_token_ttl":      d.duration(&a.IDTokenTTL),
		"refresh_tokens":    d.boolean(&a.RefreshTokens),
		"refresh_token_ttl": d.duration(&a.RefreshTokenTTL),
		"signing_alg":       d.enum(&a.SigningAlg, signingAlgs),
		"session": func(v *yaml.Node, p string) {
			d.object(v, p, map[string]setter{
				"cookie":       d.enum(&a.Session.Cookie, cookieModes),
				"idle_timeout": d.duration(&a.Session.IdleTimeout),
				"sso":          d.boolean(&a.Session.SSO),
			})
		},
		"show_detailed_errors": d.boolean(&a.ShowDetailedErrors),
		"audit_log":            d.boolean(&a.AuditLog),
		"logoff_redirect_url":  d.str(&a.LogoffRedirectURL, checkLocalOrHTTPURL),
	})
}

// uniq reports a second use of a name within one list.
type uniq struct {
	d     *decoder
	key   string
	first map[string]string
}

func (d *decoder) uniq(key string) *uniq { return &uniq{d: d, key: key, first: map[string]string{}} }

func (u *uniq) check(name string, n *yaml.Node, path string) {
	if name == "" || n == nil {
		return
	}
	if prev, dup := u.first[name]; dup {
		u.d.failf(n, path, "duplicate %s %q (first at %s)", u.key, name, prev)
		return
	}
	u.first[name] = fmt.Sprintf("%s, line %d", strings.TrimSuffix(path, "."+u.key), n.Line)
}

// items decodes a list of mappings, skipping elements that are not one.
func (d *decoder) items(n *yaml.Node, path string, item func(v *yaml.Node, path string)) {
	d.list(n, path, func(v *yaml.Node, p string) {
		if v.Kind != yaml.MappingNode {
			d.failf(v, p, "must be a mapping, not %s", yamlnode.Describe(v))
			return
		}
		item(v, p)
	})
}

// require reports a missing or empty required key at the item's position.
func (d *decoder) require(item *yaml.Node, path string, present map[string]*yaml.Node, key, value string) {
	if value != "" {
		return
	}
	at := item
	if v := present[key]; v != nil {
		at = v
	}
	d.failf(at, joinPath(path, key), "is required")
}

func (d *decoder) users(n *yaml.Node, path string) []User {
	var out []User
	names := d.uniq("username")
	d.items(n, path, func(item *yaml.Node, p string) {
		var u User
		present, _ := d.object(item, p, map[string]setter{
			"username":      d.str(&u.Username, checkUsername),
			"password":      d.str(&u.Password),
			"password_hash": d.str(&u.PasswordHash, checkArgon2PHC),
			"email":         d.str(&u.Email, checkEmail),
			"name":          d.str(&u.Name),
			"roles":         d.strs(&u.Roles, checkRole),
		})
		d.require(item, p, present, "username", u.Username)
		names.check(u.Username, present["username"], joinPath(p, "username"))
		if u.Password != "" && u.PasswordHash != "" {
			d.failf(present["password_hash"], joinPath(p, "password_hash"), "give password or password_hash, not both")
		}
		out = append(out, u)
	})
	return out
}

func (d *decoder) clients(n *yaml.Node, path string) []Client {
	var out []Client
	ids := d.uniq("id")
	d.items(n, path, func(item *yaml.Node, p string) {
		c, idNode := d.client(item, p)
		ids.check(c.ID, idNode, joinPath(p, "id"))
		out = append(out, c)
	})
	return out
}

// client decodes and checks one client; it also returns the node of its id
// for the duplicate check, which spans the list.
func (d *decoder) client(item *yaml.Node, p string) (Client, *yaml.Node) {
	c := Client{TokenEndpointAuthMethod: "client_secret_basic", Consent: "user"}
	present, _ := d.object(item, p, map[string]setter{
		"id":                         d.str(&c.ID, checkClientID),
		"name":                       d.str(&c.Name),
		"secret":                     d.str(&c.Secret),
		"redirect_uris":              d.strs(&c.RedirectURIs, checkRedirectURI),
		"post_logout_redirect_uris":  d.strs(&c.PostLogoutRedirectURIs, checkRedirectURI),
		"grant_types":                d.strs(&c.GrantTypes, oneOf(grantTypes)),
		"scopes":                     d.strs(&c.Scopes, checkScope),
		"token_endpoint_auth_method": d.enum(&c.TokenEndpointAuthMethod, clientAuthMethods),
		"jwks":                       d.jwks(&c.JWKS),
		"jwks_uri":                   d.str(&c.JWKSURI, checkHTTPURL),
		"public_key_pem":             d.str(&c.PublicKeyPEM, checkPublicKeyPEM),
		"consent":                    d.enum(&c.Consent, consentModes),
		"dpop":                       d.boolean(&c.DPoP),
		"roles":                      d.strs(&c.Roles, checkRole),
	})
	d.require(item, p, present, "id", c.ID)
	if len(c.GrantTypes) == 0 {
		c.GrantTypes = []string{"authorization_code"}
	}
	d.checkClient(item, p, present, &c)
	return c, present["id"]
}

// ValidateClient checks a client built outside a file (flowgate client add)
// by the rules a declared client meets. Its errors name the keys
// (redirect_uris[0]) and carry no file position. It does not apply the
// defaults; a client with an empty token_endpoint_auth_method is judged as
// client_secret_basic, one without grant types as authorization_code.
func ValidateClient(c Client) error {
	// Running the client through the file decoder keeps one set of rules.
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	d := &decoder{}
	d.client(&n, "")
	errs := make([]error, len(d.errs))
	for i, e := range d.errs {
		e.Line, e.Column = 0, 0
		errs[i] = e
	}
	return errors.Join(errs...)
}

// checkClient holds the rules that tie a client's keys together; each
// error points at the key to change.
func (d *decoder) checkClient(item *yaml.Node, p string, present map[string]*yaml.Node, c *Client) {
	at := func(key string) *yaml.Node {
		if v := present[key]; v != nil {
			return v
		}
		return item
	}
	method := c.TokenEndpointAuthMethod
	methodNote := ""
	if present["token_endpoint_auth_method"] == nil {
		methodNote = " (the default token_endpoint_auth_method)"
	}
	switch method {
	case "none":
		if c.Secret != "" {
			d.failf(at("secret"), joinPath(p, "secret"), "a public client (token_endpoint_auth_method none) must not have a secret")
		}
		if slices.Contains(c.GrantTypes, "client_credentials") {
			d.failf(at("grant_types"), joinPath(p, "grant_types"), "a public client (token_endpoint_auth_method none) cannot use client_credentials")
		}
	case "client_secret_basic", "client_secret_post":
		if c.Secret == "" {
			d.failf(at("secret"), joinPath(p, "secret"), "is required for %s%s; use token_endpoint_auth_method: none for a public client", method, methodNote)
		}
	case "private_key_jwt":
		if c.Secret != "" {
			d.failf(at("secret"), joinPath(p, "secret"), "is not used with private_key_jwt; remove it")
		}
		var sources []string
		for _, kv := range [][2]string{{"jwks", c.JWKS}, {"jwks_uri", c.JWKSURI}, {"public_key_pem", c.PublicKeyPEM}} {
			if kv[1] != "" || d.hasErrorAt(joinPath(p, kv[0])) {
				sources = append(sources, kv[0])
			}
		}
		switch {
		case len(sources) == 0:
			d.failf(item, joinPath(p, "jwks"), "private_key_jwt needs one of jwks, jwks_uri or public_key_pem")
		case len(sources) > 1:
			d.failf(at(sources[1]), joinPath(p, sources[1]), "private_key_jwt takes one key source, not %s", strings.Join(sources, " and "))
		}
	}
	if method != "private_key_jwt" {
		for _, kv := range [][2]string{{"jwks", c.JWKS}, {"jwks_uri", c.JWKSURI}, {"public_key_pem", c.PublicKeyPEM}} {
			if k, v := kv[0], kv[1]; v != "" {
				d.failf(at(k), joinPath(p, k), "is only used with token_endpoint_auth_method private_key_jwt")
			}
		}
	}
	if slices.Contains(c.GrantTypes, "authorization_code") && len(c.RedirectURIs) == 0 && !d.hasErrorAt(joinPath(p, "redirect_uris")) {
		note := ""
		if present["grant_types"] == nil {
			note = " (grant_types defaults to [authorization_code])"
		}
		d.failf(at("redirect_uris"), joinPath(p, "redirect_uris"), "a client with the authorization_code grant needs at least one redirect URI%s", note)
	}
}

// hasErrorAt avoids a second, derived complaint about a key already
// reported (a list whose every entry was rejected is "empty" too).
func (d *decoder) hasErrorAt(path string) bool {
	return slices.ContainsFunc(d.errs, func(e *FieldError) bool {
		return e.Path == path || strings.HasPrefix(e.Path, path+"[")
	})
}

func oneOf(allowed []string) func(string) error {
	return func(s string) error {
		if !slices.Contains(allowed, s) {
			return fmt.Errorf("%q is not one of %s", s, strings.Join(allowed, ", "))
		}
		return nil
	}
}

// jwks takes the inline key set as YAML (written out in the file) or as a
// string of JSON (as pasted from a provider), and stores JSON text. An
// empty mapping means no key set.
func (d *decoder) jwks(dst *string) setter {
	return func(v *yaml.Node, path string) {
		var text string
		switch {
		case yamlnode.IsNull(v):
			return
		case v.Kind == yaml.ScalarNode:
			text = v.Value
		case v.Kind == yaml.MappingNode:
			if len(v.Content) == 0 {
				return
			}
			var obj any
			if err := v.Decode(&obj); err != nil {
				d.fail(v, path, fmt.Errorf("is not a JSON Web Key Set: %w", err))
				return
			}
			b, err := json.Marshal(obj)
			if err != nil {
				d.failf(v, path, "is not a JSON Web Key Set (keys must be strings)")
				return
			}
			text = string(b)
		default:
			d.failf(v, path, "must be a mapping (a JSON Web Key Set), not %s", yamlnode.Describe(v))
			return
		}
		if text == "" {
			return
		}
		if err := checkJWKS(text); err != nil {
			d.fail(v, path, err)
			return
		}
		*dst = text
	}
}

func (d *decoder) trustedIssuers(n *yaml.Node, path string) []TrustedIssuer {
	var out []TrustedIssuer
	names := d.uniq("name")
	d.items(n, path, func(item *yaml.Node, p string) {
		t := TrustedIssuer{SubjectClaim: "sub", ScopeClaim: "scope", RolesClaim: "roles"}
		present, _ := d.object(item, p, map[string]setter{
			"name":          d.str(&t.Name, checkName, notReservedPrefix),
			"issuer":        d.str(&t.Issuer, checkHTTPURL),
			"metadata_url":  d.str(&t.MetadataURL, checkHTTPURL),
			"audience":      d.str(&t.Audience),
			"subject_claim": d.enum(&t.SubjectClaim, subjectClaims),
			"scope_claim":   d.enum(&t.ScopeClaim, scopeClaims),
			"roles_claim": func(v *yaml.Node, p string) {
				if s, ok := d.scalar(v, p); ok && s != "" {
					t.RolesClaim = s
				}
			},
			"scope_map": d.strMap(&t.ScopeMap, func(k, v string) error {
				if err := checkScope(k); err != nil {
					return err
				}
				return oneOf(flowgateScopes)(v)
			}),
		})
		d.require(item, p, present, "name", t.Name)
		d.require(item, p, present, "issuer", t.Issuer)
		d.require(item, p, present, "audience", t.Audience)
		names.check(t.Name, present["name"], joinPath(p, "name"))
		if t.MetadataURL == "" && t.Issuer != "" {
			t.MetadataURL = discoveryURL(t.Issuer)
		}
		out = append(out, t)
	})
	return out
}

func notReservedPrefix(s string) error {
	if slices.Contains(reservedPrincipalPrefixes, s) {
		return fmt.Errorf("%q is reserved: principals %s:… already mean Flowgate's own", s, s)
	}
	return nil
}

// discoveryURL is OpenID Connect Discovery §4: the issuer without its
// trailing slash plus the well-known path.
func discoveryURL(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
}

func (d *decoder) oauthServers(n *yaml.Node, path string) []OAuthServer {
	var out []OAuthServer
	names := d.uniq("name")
	d.items(n, path, func(item *yaml.Node, p string) {
		s := OAuthServer{ClientAuth: "client_secret_basic", UsePrompt: true, UsePKCE: true}
		present, _ := d.object(item, p, map[string]setter{
			"name":                   d.str(&s.Name, checkName),
			"metadata_url":           d.str(&s.MetadataURL, checkHTTPURL),
			"authorization_endpoint": d.str(&s.AuthorizationEndpoint, checkHTTPURL),
			"token_endpoint":         d.str(&s.TokenEndpoint, checkHTTPURL),
			"refresh_endpoint":       d.str(&s.RefreshEndpoint, checkHTTPURL),
			"revocation_endpoint":    d.str(&s.RevocationEndpoint, checkHTTPURL),
			"client_id":              d.str(&s.ClientID),
			"client_secret":          d.str(&s.ClientSecret),
			"client_auth":            d.enum(&s.ClientAuth, outboundAuth),
			"private_key_file":       d.str(&s.PrivateKeyFile),
			"key_id":                 d.str(&s.KeyID),
			"scopes":                 d.strs(&s.Scopes, checkScope),
			"params": d.strMap(&s.Params, func(k, _ string) error {
				if slices.Contains(reservedParams, k) {
					return fmt.Errorf("%s is set by Flowgate itself and cannot be overridden", k)
				}
				return nil
			}),
			"use_prompt":   d.boolean(&s.UsePrompt),
			"use_pkce":     d.boolean(&s.UsePKCE),
			"redirect_uri": d.str(&s.RedirectURI, checkHTTPURL),
		})
		d.require(item, p, present, "name", s.Name)
		d.require(item, p, present, "client_id", s.ClientID)
		names.check(s.Name, present["name"], joinPath(p, "name"))
		if s.MetadataURL == "" && s.TokenEndpoint == "" && !d.hasErrorAt(joinPath(p, "metadata_url")) && !d.hasErrorAt(joinPath(p, "token_endpoint")) {
			d.failf(item, joinPath(p, "metadata_url"), "either metadata_url or token_endpoint is required")
		}
		if s.RefreshEndpoint == "" {
			s.RefreshEndpoint = s.TokenEndpoint
		}
		at := func(key string) *yaml.Node {
			if v := present[key]; v != nil {
				return v
			}
			return item
		}
		note := ""
		if present["client_auth"] == nil {
			note = " (the default client_auth)"
		}
		switch s.ClientAuth {
		case "private_key_jwt":
			if s.PrivateKeyFile == "" {
				d.failf(at("private_key_file"), joinPath(p, "private_key_file"), "is required for client_auth private_key_jwt")
			}
			if s.ClientSecret != "" {
				d.failf(at("client_secret"), joinPath(p, "client_secret"), "is not used with client_auth private_key_jwt; remove it")
			}
		default:
			if s.ClientSecret == "" {
				d.failf(at("client_secret"), joinPath(p, "client_secret"), "is required for client_auth %s%s", s.ClientAuth, note)
			}
			for _, k := range []string{"private_key_file", "key_id"} {
				if v := present[k]; v != nil && v.Value != "" {
					d.failf(v, joinPath(p, k), "is only used with client_auth private_key_jwt")
				}
			}
		}
		out = append(out, s)
	})
	return out
}

func (d *decoder) identityProviders(n *yaml.Node, path string) []IdentityProvider {
	var out []IdentityProvider
	names := d.uniq("name")
	d.items(n, path, func(item *yaml.Node, p string) {
		var ip IdentityProvider
		present, _ := d.object(item, p, map[string]setter{
			"name":          d.str(&ip.Name, checkName),
			"issuer":        d.str(&ip.Issuer, checkHTTPURL),
			"client_id":     d.str(&ip.ClientID),
			"client_secret": d.str(&ip.ClientSecret),
			"scopes":        d.strs(&ip.Scopes, checkScope),
			"metadata_url":  d.str(&ip.MetadataURL, checkHTTPURL),
		})
		d.require(item, p, present, "name", ip.Name)
		d.require(item, p, present, "issuer", ip.Issuer)
		d.require(item, p, present, "client_id", ip.ClientID)
		d.require(item, p, present, "client_secret", ip.ClientSecret)
		names.check(ip.Name, present["name"], joinPath(p, "name"))
		if len(ip.Scopes) == 0 {
			ip.Scopes = []string{"openid", "profile", "email"}
		} else if !slices.Contains(ip.Scopes, "openid") {
			d.failf(present["scopes"], joinPath(p, "scopes"), "must include openid: sign-in needs an ID token")
		}
		if ip.MetadataURL == "" && ip.Issuer != "" {
			ip.MetadataURL = discoveryURL(ip.Issuer)
		}
		out = append(out, ip)
	})
	return out
}
