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

	"github.com/flowgate/flowgate/internal/principal"
	"github.com/flowgate/flowgate/internal/yamlnode"
)

// parse decodes and validates a file, its ${NAME} references read with
// getenv. It reports whether the file set the public URL, which decides
// whether Load derives it from the address.
func parse(data []byte, filename string, getenv func(string) string) (cfg *Config, publicURLSet bool, errs []error) {
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
		before := len(d.errs)
		d.expandSources(root, getenv)
		// A missing variable or file would only show again as the
		// problems of a value left empty, so stop at them.
		if len(d.errs) == before {
			publicURLSet = d.root(root, cfg)
		}
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
				"odata":      d.boolean(&c.APIs.OData),
				"scim":       d.boolean(&c.APIs.SCIM),
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
		"notifications": func(v *yaml.Node, p string) {
			d.object(v, p, map[string]setter{
				"smtp": func(v *yaml.Node, p string) {
					s := &c.Notifications.SMTP
					present, _ := d.object(v, p, map[string]setter{
						"host":     d.str(&s.Host, checkSMTPHost),
						"port":     d.positiveInt(&s.Port),
						"username": d.str(&s.Username),
						"password": d.str(&s.Password),
						"from":     d.str(&s.From, checkMailFrom),
						"starttls": d.boolean(&s.StartTLS),
					})
					if s.Port > 65535 {
						d.fail(present["port"], p+".port", fmt.Errorf("%d is not a port (1-65535)", s.Port))
					}
					if s.Password != "" && s.Username == "" {
						d.fail(present["password"], p+".password", errors.New("a password needs a username"))
					}
				},
				"task_assigned": d.boolean(&c.Notifications.TaskAssigned),
			})
		},
		"flows": func(v *yaml.Node, p string) {
			if s, ok := d.scalar(v, p); ok && s != "" {
				c.Flows, flowsSet = s, true
			}
		},
	})
	d.checkLogin(present["auth"], c)
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
		"addr":         d.str(&s.Addr, checkAddr),
		"metrics_addr": d.str(&s.MetricsAddr, checkAddr),
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
		"trusted_proxies": d.strs(&s.TrustedProxies, checkProxy),
		"tls": func(v *yaml.Node, p string) {
			d.object(v, p, map[string]setter{
				"cert_file": d.str(&s.TLS.CertFile, checkReadableFile),
				"key_file":  d.str(&s.TLS.KeyFile, checkReadableFile),
			})
			if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
				d.fail(v, p, errors.New("needs both cert_file and key_file"))
			}
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
		"login": func(v *yaml.Node, p string) {
			d.object(v, p, map[string]setter{
				"local":                     d.boolean(&a.Login.Local),
				"default_identity_provider": d.str(&a.Login.DefaultIdentityProvider),
			})
		},
		"dpop_nonce": d.boolean(&a.DPoPNonce),
		"mfa":        d.enum(&a.MFA, mfaModes),
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

func (d *decoder) users(n *yaml.Node, path string) []User {
	var out []User
	names := d.uniq("username")
	d.items(n, path, func(item *yaml.Node, p string) {
		var u User
		present, _ := d.object(item, p, map[string]setter{
			"username":      d.str(&u.Username),
			"password":      d.str(&u.Password),
			"password_hash": d.str(&u.PasswordHash),
			"email":         d.str(&u.Email),
			"name":          d.str(&u.Name),
			"roles":         d.texts(&u.Roles),
		})
		d.judge(item, p, present, u.Validate())
		names.check(u.Username, present["username"], joinPath(p, "username"))
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
	var c Client
	present, _ := d.object(item, p, map[string]setter{
		"id":                         d.str(&c.ID),
		"name":                       d.str(&c.Name),
		"secret":                     d.str(&c.Secret),
		"redirect_uris":              d.texts(&c.RedirectURIs),
		"post_logout_redirect_uris":  d.texts(&c.PostLogoutRedirectURIs),
		"grant_types":                d.texts(&c.GrantTypes),
		"scopes":                     d.texts(&c.Scopes),
		"token_endpoint_auth_method": d.str(&c.TokenEndpointAuthMethod),
		"jwks":                       d.jwks(&c.JWKS),
		"jwks_uri":                   d.str(&c.JWKSURI),
		"public_key_pem":             d.str(&c.PublicKeyPEM),
		"consent":                    d.str(&c.Consent),
		"dpop":                       d.boolean(&c.DPoP),
		"roles":                      d.texts(&c.Roles),
		"allowed_origins":            d.texts(&c.AllowedOrigins),
		"audiences":                  d.texts(&c.Audiences),
	})
	// A key source left empty is none: "private_key_jwt needs one of
	// jwks, …" is about the entry, so it points there.
	for k, v := range map[string]string{"jwks": c.JWKS, "jwks_uri": c.JWKSURI, "public_key_pem": c.PublicKeyPEM} {
		if v == "" {
			delete(present, k)
		}
	}
	d.judge(item, p, present, c.Validate())
	return c.WithDefaults(), present["id"]
}

func oneOf(allowed []string) func(string) error {
	return func(s string) error {
		if !slices.Contains(allowed, s) {
			return fmt.Errorf("%q is not one of %s", s, strings.Join(allowed, ", "))
		}
		return nil
	}
}

// jwks takes the inline key set as YAML or as a string of JSON (as pasted
// from a provider), and stores JSON text for Client.Validate to judge. An
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
		*dst = text
	}
}

func (d *decoder) trustedIssuers(n *yaml.Node, path string) []TrustedIssuer {
	var out []TrustedIssuer
	names := d.uniq("name")
	d.items(n, path, func(item *yaml.Node, p string) {
		var t TrustedIssuer
		present, _ := d.object(item, p, map[string]setter{
			"name":          d.str(&t.Name),
			"issuer":        d.str(&t.Issuer),
			"metadata_url":  d.str(&t.MetadataURL),
			"audience":      d.str(&t.Audience),
			"subject_claim": d.str(&t.SubjectClaim),
			"scope_claim":   d.str(&t.ScopeClaim),
			"roles_claim":   d.str(&t.RolesClaim),
			"scope_map":     d.strMap(&t.ScopeMap, nil),
		})
		d.judge(item, p, present, t.Validate())
		names.check(t.Name, present["name"], joinPath(p, "name"))
		out = append(out, t.WithDefaults())
	})
	return out
}

func notReservedPrefix(s string) error {
	if slices.Contains(principal.OwnKinds(), s) {
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
		s := OAuthServer{UsePrompt: true, UsePKCE: true}
		present, _ := d.object(item, p, map[string]setter{
			"name":                   d.str(&s.Name),
			"metadata_url":           d.str(&s.MetadataURL),
			"authorization_endpoint": d.str(&s.AuthorizationEndpoint),
			"token_endpoint":         d.str(&s.TokenEndpoint),
			"refresh_endpoint":       d.str(&s.RefreshEndpoint),
			"revocation_endpoint":    d.str(&s.RevocationEndpoint),
			"client_id":              d.str(&s.ClientID),
			"client_secret":          d.str(&s.ClientSecret),
			"client_auth":            d.str(&s.ClientAuth),
			"private_key_file":       d.str(&s.PrivateKeyFile),
			"key_id":                 d.str(&s.KeyID),
			"scopes":                 d.texts(&s.Scopes),
			"params":                 d.strMap(&s.Params, nil),
			"use_prompt":             d.boolean(&s.UsePrompt),
			"dpop":                   d.boolean(&s.DPoP),
			"use_pkce":               d.boolean(&s.UsePKCE),
			"redirect_uri":           d.str(&s.RedirectURI),
			"template":               d.str(&s.Template),
			"tenant":                 d.str(&s.Tenant),
			"domain":                 d.str(&s.Domain),
		})
		d.judge(item, p, present, s.Validate())
		names.check(s.Name, present["name"], joinPath(p, "name"))
		out = append(out, s.WithDefaults())
	})
	return out
}

func (d *decoder) identityProviders(n *yaml.Node, path string) []IdentityProvider {
	var out []IdentityProvider
	names := d.uniq("name")
	d.items(n, path, func(item *yaml.Node, p string) {
		ip := IdentityProvider{CreateUsers: true}
		present, _ := d.object(item, p, map[string]setter{
			"name":             d.str(&ip.Name),
			"title":            d.str(&ip.Title),
			"template":         d.str(&ip.Template),
			"tenant":           d.str(&ip.Tenant),
			"issuer":           d.str(&ip.Issuer),
			"client_id":        d.str(&ip.ClientID),
			"client_secret":    d.str(&ip.ClientSecret),
			"client_auth":      d.str(&ip.ClientAuth),
			"private_key_file": d.str(&ip.PrivateKeyFile),
			"key_id":           d.str(&ip.KeyID),
			"scopes":           d.texts(&ip.Scopes),
			"metadata_url":     d.str(&ip.MetadataURL),
			"link_by":          d.str(&ip.LinkBy),
			"create_users":     d.boolean(&ip.CreateUsers),
			"username_claim":   d.str(&ip.UsernameClaim),
			"roles_claim":      d.str(&ip.RolesClaim),
			"role_map":         d.strMap(&ip.RoleMap, nil),
			"default_roles":    d.texts(&ip.DefaultRoles),
		})
		d.judge(item, p, present, ip.Validate())
		names.check(ip.Name, present["name"], joinPath(p, "name"))
		out = append(out, ip.WithDefaults())
	})
	return out
}

// checkLogin checks auth.login against the identity providers: the
// default one must exist, and without the password form there must be a
// provider to sign in with.
func (d *decoder) checkLogin(at *yaml.Node, c *Config) {
	if at == nil {
		return
	}
	l := c.Auth.Login
	if name := l.DefaultIdentityProvider; name != "" && !slices.ContainsFunc(c.IdentityProviders, func(ip IdentityProvider) bool { return ip.Name == name }) {
		d.failf(at, "auth.login.default_identity_provider", "names no identity provider: %q is not in identity_providers", name)
	}
	if !l.Local && len(c.IdentityProviders) == 0 {
		d.failf(at, "auth.login.local", "false needs at least one entry in identity_providers: nobody could sign in")
	}
}
