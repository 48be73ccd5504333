package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env builds a getenv from a map, so tests never read the real environment.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// lines splits a joined error into its problems.
func lines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefault(t *testing.T) {
	want := &Config{
		Server:   Server{Addr: ":8080", PublicURL: "http://localhost:8080"},
		Database: "sqlite:./flowgate.db",
		Auth: Auth{
			AccessTokenTTL: time.Hour, IDTokenTTL: time.Hour,
			RefreshTokens: true, RefreshTokenTTL: 720 * time.Hour,
			SigningAlg: "ES256",
			Session:    Session{Cookie: "persistent", IdleTimeout: 20 * time.Minute, SSO: true},
			AuditLog:   true,
			Login:      Login{Local: true},
			MFA:        "optional",
		},
		APIs:   APIs{Workflow: true, Invoke: true, BasicAuth: false, OData: true},
		Flows:  "./flows",
		Limits: Limits{MaxSteps: 10000, MaxVars: 1 << 20},
		Notifications: Notifications{
			SMTP:         SMTP{Port: 587, From: "Flowgate <flowgate@example.com>", StartTLS: true},
			TaskAssigned: true,
		},
	}
	if got := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", got, want)
	}
	// With nothing configured Load is Default; the default ./flows does not
	// exist in this package directory and that must not be an error.
	got, err := Load(Overrides{}, env(nil))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load() =\n%+v\nwant\n%+v", got, want)
	}
	// An empty file and empty sections keep the defaults too.
	for _, doc := range []string{"", "# nothing\n", "auth:\nserver:\napis:\nlimits:\n"} {
		got, err := Parse([]byte(doc), "empty.yaml")
		if err != nil {
			t.Fatalf("Parse(%q): %v", doc, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Parse(%q) =\n%+v\nwant\n%+v", doc, got, want)
		}
	}
}

func TestParseFullExample(t *testing.T) {
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data, "testdata/full.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	const tenant = "https://login.microsoftonline.com/4f1c7a52-2b1e-4c6e-9f5b-0c3a1d2e3f40"
	want := &Config{
		Server:   Server{Addr: ":9443", PublicURL: "https://flowgate.example.com"},
		Database: "postgres://flowgate:db-pass-123@db.example.com:5432/flowgate?sslmode=require",
		Secrets:  Secrets{KeyFile: "/etc/flowgate/secret.key"},
		Auth: Auth{
			AccessTokenTTL: 15 * time.Minute, IDTokenTTL: time.Hour,
			RefreshTokens: true, RefreshTokenTTL: 30 * 24 * time.Hour,
			SigningAlg:         "RS256",
			Session:            Session{Cookie: "session", IdleTimeout: 45 * time.Minute, SSO: false},
			ShowDetailedErrors: true, AuditLog: true,
			LogoffRedirectURL: "https://www.example.com/bye",
			Login:             Login{Local: true},
			MFA:               "required",
		},
		Users: []User{
			{Username: "alice", Password: "alice-password-2024", Email: "alice@example.com", Name: "Alice Example", Roles: []string{"employee", "approver"}},
			{Username: "bob", PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$aSXG7rPfszp+7BJPBj0Xyw$CVQxeCgZjvxymR7WIA3PyMmGJoylU+RNqG6jp2lR3hQ", Email: "bob@example.com", Name: "Bob Example", Roles: []string{"employee"}},
		},
		Clients: []Client{
			{
				ID: "portal", Name: "Expense portal", Secret: "portal-secret-0123456789",
				RedirectURIs:            []string{"http://127.0.0.1:9000/callback"},
				PostLogoutRedirectURIs:  []string{"http://127.0.0.1:9000/"},
				GrantTypes:              []string{"authorization_code", "refresh_token", "client_credentials"},
				Scopes:                  []string{"openid", "profile", "email", "offline_access", "workflows.read", "workflows.start", "tasks", "flows.invoke"},
				TokenEndpointAuthMethod: "client_secret_basic", Consent: "user",
			},
			{
				ID: "spa", Name: "Single-page app",
				RedirectURIs:            []string{"https://app.example.com/cb", "com.example.app:/oauth2redirect"},
				GrantTypes:              []string{"authorization_code", "refresh_token"},
				Scopes:                  []string{"openid", "workflows.read", "tasks"},
				TokenEndpointAuthMethod: "none", Consent: "admin", DPoP: true,
			},
			{
				ID: "batch", Name: "Nightly batch",
				GrantTypes:              []string{"client_credentials"},
				Scopes:                  []string{"flows.invoke"},
				TokenEndpointAuthMethod: "private_key_jwt",
				JWKS:                    `{"keys":[{"crv":"P-256","kid":"batch-2024","kty":"EC","use":"sig","x":"gxeezFOje8wtaCkhdQZAJggpqI69hOxqA-VcSmwymcI","y":"ilPdiPVmxbS0EqWX4vkagaFEQYzD1Qe9ZCTGR32lLI0"}]}`,
				Consent:                 "user",
				Roles:                   []string{"integration"},
			},
		},
		TrustedIssuers: []TrustedIssuer{{
			Name: "entra", Issuer: tenant + "/v2.0",
			MetadataURL:  tenant + "/v2.0/.well-known/openid-configuration",
			Audience:     "api://flowgate",
			SubjectClaim: "oid", ScopeClaim: "scp", RolesClaim: "roles",
			ScopeMap: map[string]string{"Workflows.Read": "workflows.read", "Flows.Invoke": "flows.invoke", "Data.Read": "data.read"},
		}},
		OAuthServers: []OAuthServer{
			{
				Name:                  "graph",
				AuthorizationEndpoint: tenant + "/oauth2/v2.0/authorize",
				TokenEndpoint:         tenant + "/oauth2/v2.0/token",
				RefreshEndpoint:       tenant + "/oauth2/v2.0/token",
				ClientID:              "6d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6",
				ClientSecret:          "graph-secret-abcdef",
				ClientAuth:            "client_secret_post",
				Scopes:                []string{"User.Read", "offline_access"},
				Params:                map[string]string{"prompt_hint": "select_account"},
				UsePrompt:             false, UsePKCE: true,
				RedirectURI: "https://flowgate.example.com/oauth-callback",
			},
			{
				Name:           "okta",
				MetadataURL:    "https://example.okta.com/.well-known/oauth-authorization-server",
				ClientID:       "0oa1b2c3d4",
				ClientAuth:     "private_key_jwt",
				PrivateKeyFile: "/etc/flowgate/okta.pem", KeyID: "okta-1",
				Scopes:    []string{"okta.users.read"},
				Params:    map[string]string{"audience": "https://example.okta.com"},
				UsePrompt: true, UsePKCE: false,
				RedirectURI: "https://flowgate.example.com/oauth-callback/okta",
			},
		},
		IdentityProviders: []IdentityProvider{{
			Name: "google", Issuer: "https://accounts.google.com",
			ClientID:     "1234567890-abc.apps.googleusercontent.com",
			ClientSecret: "google-secret-xyz",
			Scopes:       []string{"openid", "email", "profile"},
			MetadataURL:  "https://accounts.google.com/.well-known/openid-configuration",
			Title:        "google", ClientAuth: "client_secret_basic", LinkBy: "email", CreateUsers: true,
			UsernameClaim: "preferred_username", RolesClaim: "groups", SubjectClaim: "sub",
		}},
		APIs:   APIs{Workflow: true, Invoke: false, BasicAuth: true, OData: false, SCIM: true},
		Egress: Egress{Allow: []string{"127.0.0.1", "sidecar.local"}, Deny: []string{"10.20.0.0/16", "fd00:1::/32", "metadata.internal"}},
		Flows:  "testdata/flows",
		Limits: Limits{MaxSteps: 500, MaxVars: 256 << 10},
		Notifications: Notifications{
			SMTP: SMTP{Host: "smtp.example.com", Port: 2525, Username: "flowgate", Password: "smtp-password",
				From: "Flowgate <no-reply@example.com>", StartTLS: true},
			TaskAssigned: false,
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse(full.yaml) =\n%+v\nwant\n%+v", got, want)
	}
}

func TestPrecedence(t *testing.T) {
	fileA := writeFile(t, "a.yaml", `server:
  addr: ":7001"
  public_url: "http://file-a.example"
database: "sqlite:/file-a.db"
secrets:
  key_file: /file-a.key
`)
	fileB := writeFile(t, "b.yaml", `server:
  addr: ":7002"
`)
	envAll := map[string]string{
		EnvAddr: ":7100", EnvPublicURL: "https://env.example", EnvDatabase: "sqlite:/env.db", EnvSecretKey: "env-key",
	}
	tests := []struct {
		name  string
		o     Overrides
		env   map[string]string
		check func(t *testing.T, c *Config)
	}{
		{"defaults", Overrides{}, nil, func(t *testing.T, c *Config) {
			eq(t, c.Server.Addr, ":8080")
			eq(t, c.Server.PublicURL, "http://localhost:8080")
			eq(t, c.Database, "sqlite:./flowgate.db")
			eq(t, c.Secrets.Key, "")
		}},
		{"file beats defaults", Overrides{ConfigFile: fileA}, nil, func(t *testing.T, c *Config) {
			eq(t, c.Server.Addr, ":7001")
			eq(t, c.Server.PublicURL, "http://file-a.example")
			eq(t, c.Database, "sqlite:/file-a.db")
			eq(t, c.Secrets.KeyFile, "/file-a.key")
		}},
		{"env beats file", Overrides{ConfigFile: fileA}, envAll, func(t *testing.T, c *Config) {
			eq(t, c.Server.Addr, ":7100")
			eq(t, c.Server.PublicURL, "https://env.example")
			eq(t, c.Database, "sqlite:/env.db")
			eq(t, c.Secrets.Key, "env-key")
			eq(t, c.Secrets.KeyFile, "/file-a.key")
		}},
		{"flags beat env", Overrides{ConfigFile: fileA, Addr: ":7200", PublicURL: "https://flag.example/", Database: "postgres://db.example/flowgate"}, envAll, func(t *testing.T, c *Config) {
			eq(t, c.Server.Addr, ":7200")
			eq(t, c.Server.PublicURL, "https://flag.example")
			eq(t, c.Database, "postgres://db.example/flowgate")
			eq(t, c.Secrets.Key, "env-key")
		}},
		{"FLOWGATE_CONFIG names the file", Overrides{}, map[string]string{EnvConfig: fileB}, func(t *testing.T, c *Config) {
			eq(t, c.Server.Addr, ":7002")
		}},
		{"--config beats FLOWGATE_CONFIG", Overrides{ConfigFile: fileA}, map[string]string{EnvConfig: fileB}, func(t *testing.T, c *Config) {
			eq(t, c.Server.Addr, ":7001")
		}},
		{"secret key is trimmed", Overrides{}, map[string]string{EnvSecretKey: " k1 \n"}, func(t *testing.T, c *Config) {
			eq(t, c.Secrets.Key, "k1")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.o, env(tt.env))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func eq[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestDerivedPublicURL(t *testing.T) {
	tests := []struct {
		name, file string
		o          Overrides
		env        map[string]string
		want       string
	}{
		{"port only", "", Overrides{Addr: ":9000"}, nil, "http://localhost:9000"},
		{"ipv4 host", "", Overrides{Addr: "127.0.0.1:9000"}, nil, "http://127.0.0.1:9000"},
		{"wildcard ipv4", "", Overrides{Addr: "0.0.0.0:9000"}, nil, "http://localhost:9000"},
		{"ipv6 loopback", "", Overrides{Addr: "[::1]:9000"}, nil, "http://[::1]:9000"},
		{"hostname", "", Overrides{}, map[string]string{EnvAddr: "flowgate.lan:80"}, "http://flowgate.lan:80"},
		{"from file addr", "server:\n  addr: \"127.0.0.2:9100\"\n", Overrides{}, nil, "http://127.0.0.2:9100"},
		{"env addr over file addr", "server:\n  addr: \":9100\"\n", Overrides{}, map[string]string{EnvAddr: ":9200"}, "http://localhost:9200"},
		{"file public_url wins over derivation", "server:\n  public_url: https://x.example\n", Overrides{Addr: ":9000"}, nil, "https://x.example"},
		{"env public_url wins over derivation", "", Overrides{Addr: ":9000"}, map[string]string{EnvPublicURL: "https://y.example"}, "https://y.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.o
			if tt.file != "" {
				o.ConfigFile = writeFile(t, "f.yaml", tt.file)
			}
			c, err := Load(o, env(tt.env))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			eq(t, c.Server.PublicURL, tt.want)
		})
	}
	// Parse alone derives from the file's address too.
	c, err := Parse([]byte("server:\n  addr: \"127.0.0.1:9300\"\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, c.Server.PublicURL, "http://127.0.0.1:9300")
}

func TestDerivedRedirectURIFollowsFinalPublicURL(t *testing.T) {
	f := writeFile(t, "f.yaml", `server:
  public_url: https://file.example
oauth_servers:
  - name: graph
    token_endpoint: https://login.example/token
    client_id: abc
    client_secret: s3cr3t
`)
	c, err := Load(Overrides{ConfigFile: f}, env(map[string]string{EnvPublicURL: "https://env.example/"}))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, c.OAuthServers[0].RedirectURI, "https://env.example/oauth-callback")
	eq(t, c.OAuthServers[0].RefreshEndpoint, "https://login.example/token")
	eq(t, c.OAuthServers[0].UsePrompt, true)
	eq(t, c.OAuthServers[0].UsePKCE, true)
}

// TestErrors asserts the exact report, position and key path included, of
// each kind of problem.
func TestErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown top-level key", "serverr:\n  addr: \":1\"\n",
			[]string{`t.yaml:1:1: serverr: unknown key (did you mean server?)`}},
		{"unknown nested key", "auth:\n  session:\n    cookies: session\n",
			[]string{`t.yaml:3:5: auth.session.cookies: unknown key (did you mean cookie?)`}},
		{"unknown key far from any", "clients:\n  - id: a\n    secret: s\n    redirect_uris: [https://a.example/cb]\n    colour: red\n",
			[]string{`t.yaml:5:5: clients[0].colour: unknown key (clients[0] takes allowed_origins, audiences, consent, dpop, grant_types, id, jwks, jwks_uri, name, post_logout_redirect_uris, public_key_pem, redirect_uris, roles, scopes, secret, token_endpoint_auth_method)`}},
		{"secret key is not a file key", "secrets:\n  key: abc\n",
			[]string{`t.yaml:2:3: secrets.key: unknown key (the secret key is read only from FLOWGATE_SECRET_KEY, never from the file; use secrets.key_file for a key file)`}},
		{"null key", "~: x\nnull: y\n",
			[]string{`t.yaml:1:1: a key must be a name, not null`, `t.yaml:2:1: a key must be a name, not null`}},
		{"merge of a non-mapping", "auth: {<<: [{refresh_tokens: true}, 5]}\n",
			[]string{`t.yaml:1:37: auth: << merges mappings, not a number`}},
		{"duplicate key", "database: sqlite:a.db\ndatabase: sqlite:b.db\n",
			[]string{`t.yaml:2:1: database: duplicate key (first at line 1)`}},
		{"string for bool", "auth:\n  refresh_tokens: \"yes\"\n",
			[]string{`t.yaml:2:19: auth.refresh_tokens: "yes" is not true or false`}},
		{"number for bool", "apis:\n  invoke: 1\n",
			[]string{`t.yaml:2:11: apis.invoke: "1" is not true or false`}},
		{"mapping for string", "server:\n  addr: {port: 80}\n",
			[]string{`t.yaml:2:9: server.addr: must be a string, not a mapping`}},
		{"string for list", "users: alice\n",
			[]string{`t.yaml:1:8: users: must be a list, not a string`}},
		{"scalar for section", "auth: true\n",
			[]string{`t.yaml:1:7: auth: must be a mapping, not a boolean`}},
		{"trusted proxy not a CIDR", "server:\n  trusted_proxies: [10.0.0.0/8, proxy.example]\n",
			[]string{`t.yaml:2:33: server.trusted_proxies[1]: "proxy.example" is not a CIDR or an IP address (e.g. 10.0.0.0/8 or 192.0.2.10)`}},
		{"tls with a certificate only", "server:\n  tls: {cert_file: /dev/null}\n",
			[]string{`t.yaml:2:8: server.tls: needs both cert_file and key_file`}},
		{"tls file missing", "server:\n  tls: {cert_file: /nonexistent/c.pem, key_file: /nonexistent/k.pem}\n",
			[]string{`t.yaml:2:20: server.tls.cert_file: cannot be read: open /nonexistent/c.pem: no such file or directory`,
				`t.yaml:2:50: server.tls.key_file: cannot be read: open /nonexistent/k.pem: no such file or directory`}},
		{"origin with a path", "clients:\n  - id: a\n    token_endpoint_auth_method: none\n    redirect_uris: [https://a.example/cb]\n    allowed_origins: [https://a.example/app]\n",
			[]string{`t.yaml:5:23: clients[0].allowed_origins[0]: "https://a.example/app" is not an origin: want scheme://host[:port], e.g. https://app.example.com`}},
		{"audience with a fragment", "clients:\n  - id: a\n    token_endpoint_auth_method: none\n    redirect_uris: [https://a.example/cb]\n    audiences: [\"https://api.example#x\"]\n",
			[]string{`t.yaml:5:17: clients[0].audiences[0]: "https://api.example#x" is not a resource: want an absolute URI without a fragment, e.g. https://api.example.com`}},
		{"list item not a mapping", "clients:\n  - portal\n",
			[]string{`t.yaml:2:5: clients[0]: must be a mapping, not a string`}},
		{"bad duration", "auth:\n  access_token_ttl: 1 hour\n",
			[]string{`t.yaml:2:21: auth.access_token_ttl: "1 hour" is not a duration (such as 90s, 20m, 1h30m, 7d)`}},
		{"duration without unit", "auth:\n  session:\n    idle_timeout: 3600\n",
			[]string{`t.yaml:3:19: auth.session.idle_timeout: "3600" is not a duration (such as 90s, 20m, 1h30m, 7d)`}},
		{"zero duration", "auth:\n  id_token_ttl: 0s\n",
			[]string{`t.yaml:2:17: auth.id_token_ttl: "0s" must be longer than zero`}},
		{"bad public url", "server:\n  public_url: localhost:8080\n",
			[]string{`t.yaml:2:15: server.public_url: "localhost:8080" is not an absolute http(s) URL`}},
		{"bad addr", "server:\n  addr: \"8080\"\n",
			[]string{`t.yaml:2:9: server.addr: "8080" is not a listen address such as :8080 or 127.0.0.1:8080`}},
		{"bad database", "database: mysql://x\n",
			[]string{`t.yaml:1:11: database: must be sqlite:PATH or a postgres:// URL`}},
		{"bad logoff url", "auth:\n  logoff_redirect_url: \"//evil.example\"\n",
			[]string{`t.yaml:2:24: auth.logoff_redirect_url: "//evil.example" is neither an absolute http(s) URL nor a path starting with /`}},
		{"enum signing_alg", "auth:\n  signing_alg: HS256\n",
			[]string{`t.yaml:2:16: auth.signing_alg: "HS256" is not one of ES256, RS256, EdDSA`}},
		{"enum cookie", "auth:\n  session:\n    cookie: forever\n",
			[]string{`t.yaml:3:13: auth.session.cookie: "forever" is not one of persistent, session`}},
		{"enum mfa", "auth:\n  mfa: always\n",
			[]string{`t.yaml:2:8: auth.mfa: "always" is not one of off, optional, required`}},
		{"enum token_endpoint_auth_method",
			"server:\n  addr: \":8080\"\ndatabase: sqlite:x.db\n\n\n\n\n\n\n\nclients:\n  - id: portal\n    token_endpoint_auth_method: magic\n    secret: s\n    redirect_uris: [https://a.example/cb]\n",
			[]string{`t.yaml:13:33: clients[0].token_endpoint_auth_method: "magic" is not one of client_secret_basic, client_secret_post, private_key_jwt, none`}},
		{"enum consent", "clients:\n  - id: a\n    secret: s\n    redirect_uris: [https://a.example/cb]\n    consent: nobody\n",
			[]string{`t.yaml:5:14: clients[0].consent: "nobody" is not one of user, admin`}},
		{"enum grant type", "clients:\n  - id: a\n    secret: s\n    grant_types: [client_credentials, password]\n",
			[]string{`t.yaml:4:39: clients[0].grant_types[1]: "password" is not one of authorization_code, refresh_token, client_credentials`}},
		{"enum subject_claim and scope_claim", "trusted_issuers:\n  - name: e\n    issuer: https://e.example\n    audience: api\n    subject_claim: name\n    scope_claim: scopes\n",
			[]string{
				`t.yaml:5:20: trusted_issuers[0].subject_claim: "name" is not one of sub, oid, upn, email, preferred_username`,
				`t.yaml:6:18: trusted_issuers[0].scope_claim: "scopes" is not one of scp, scope`,
			}},
		{"enum client_auth", "oauth_servers:\n  - name: g\n    token_endpoint: https://g.example/token\n    client_id: c\n    client_secret: s\n    client_auth: none\n",
			[]string{`t.yaml:6:18: oauth_servers[0].client_auth: "none" is not one of client_secret_basic, client_secret_post, private_key_jwt`}},
		{"trusted issuer required fields", "trusted_issuers:\n  - subject_claim: oid\n",
			[]string{
				`t.yaml:2:5: trusted_issuers[0].name: is required`,
				`t.yaml:2:5: trusted_issuers[0].issuer: is required`,
				`t.yaml:2:5: trusted_issuers[0].audience: is required`,
			}},
		{"empty required value points at the value", "trusted_issuers:\n  - name: e\n    issuer: https://e.example\n    audience: \"\"\n",
			[]string{`t.yaml:4:15: trusted_issuers[0].audience: is required`}},
		{"client id required", "clients:\n  - name: nameless\n    secret: s\n    grant_types: [client_credentials]\n",
			[]string{`t.yaml:2:5: clients[0].id: is required`}},
		{"username required", "users:\n  - email: a@example.com\n",
			[]string{`t.yaml:2:5: users[0].username: is required`}},
		{"oauth server required fields", "oauth_servers:\n  - scopes: [a]\n",
			[]string{
				`t.yaml:2:5: oauth_servers[0].name: is required`,
				`t.yaml:2:5: oauth_servers[0].client_id: is required`,
				`t.yaml:2:5: oauth_servers[0].metadata_url: either metadata_url or token_endpoint is required`,
				`t.yaml:2:5: oauth_servers[0].client_secret: is required for client_auth client_secret_basic (the default client_auth)`,
			}},
		{"identity provider required fields", "identity_providers:\n  - name: google\n    issuer: https://accounts.google.com\n    scopes: [email]\n",
			[]string{
				`t.yaml:2:5: identity_providers[0].client_id: is required`,
				`t.yaml:2:5: identity_providers[0].client_secret: is required for client_auth client_secret_basic (the default client_auth)`,
				`t.yaml:4:13: identity_providers[0].scopes: must include openid: sign-in needs an ID token`,
			}},
		{"duplicate usernames", "users:\n  - username: alice\n  - username: bob\n  - username: alice\n",
			[]string{`t.yaml:4:15: users[2].username: duplicate username "alice" (first at users[0], line 2)`}},
		{"duplicate client ids", "clients:\n  - id: a\n    secret: s\n    grant_types: [client_credentials]\n  - id: a\n    secret: s\n    grant_types: [client_credentials]\n",
			[]string{`t.yaml:5:9: clients[1].id: duplicate id "a" (first at clients[0], line 2)`}},
		{"duplicate issuer and server names", "trusted_issuers:\n  - {name: e, issuer: \"https://e.example\", audience: a}\n  - {name: e, issuer: \"https://f.example\", audience: a}\noauth_servers:\n  - {name: g, token_endpoint: \"https://g.example/t\", client_id: c, client_secret: s}\n  - {name: g, token_endpoint: \"https://g.example/t\", client_id: c, client_secret: s}\n",
			[]string{
				`t.yaml:3:12: trusted_issuers[1].name: duplicate name "e" (first at trusted_issuers[0], line 2)`,
				`t.yaml:6:12: oauth_servers[1].name: duplicate name "g" (first at oauth_servers[0], line 5)`,
			}},
		{"password and password_hash", "users:\n  - username: alice\n    password: pw-one\n    password_hash: \"$argon2id$v=19$m=19456,t=2,p=1$aSXG7rPfszp+7BJPBj0Xyw$CVQxeCgZjvxymR7WIA3PyMmGJoylU+RNqG6jp2lR3hQ\"\n",
			[]string{`t.yaml:4:20: users[0].password_hash: give password or password_hash, not both`}},
		{"bcrypt is not argon2id", "users:\n  - username: alice\n    password_hash: \"$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy\"\n",
			[]string{`t.yaml:3:20: users[0].password_hash: is not an argon2id PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash)`}},
		{"argon2 parameters out of range", "users:\n  - username: alice\n    password_hash: \"$argon2id$v=19$m=99999999,t=2,p=1$aSXG7rPfszp+7BJPBj0Xyw$CVQxeCgZjvxymR7WIA3PyMmGJoylU+RNqG6jp2lR3hQ\"\n",
			[]string{`t.yaml:3:20: users[0].password_hash: has argon2id parameters out of range (m 8..1048576, t 1..16, p 1..255)`}},
		{"bad username and email", "users:\n  - username: \"al ice\"\n    email: not-an-email\n",
			[]string{
				`t.yaml:2:15: users[0].username: "al ice" must be at most 64 letters, digits and . _ @ -`,
				`t.yaml:3:12: users[0].email: "not-an-email" is not an email address`,
			}},
		{"public client with secret", "clients:\n  - id: spa\n    token_endpoint_auth_method: none\n    secret: oops\n    redirect_uris: [https://a.example/cb]\n",
			[]string{`t.yaml:4:13: clients[0].secret: a public client (token_endpoint_auth_method none) must not have a secret`}},
		{"public client with client_credentials", "clients:\n  - id: spa\n    token_endpoint_auth_method: none\n    grant_types: [client_credentials]\n",
			[]string{`t.yaml:4:18: clients[0].grant_types: a public client (token_endpoint_auth_method none) cannot use client_credentials`}},
		{"confidential client without secret", "clients:\n  - id: portal\n    redirect_uris: [https://a.example/cb]\n",
			[]string{`t.yaml:2:5: clients[0].secret: is required for client_secret_basic (the default token_endpoint_auth_method); use token_endpoint_auth_method: none for a public client`}},
		{"client_secret_post without secret", "clients:\n  - id: portal\n    token_endpoint_auth_method: client_secret_post\n    secret: \"\"\n    grant_types: [client_credentials]\n",
			[]string{`t.yaml:4:13: clients[0].secret: is required for client_secret_post; use token_endpoint_auth_method: none for a public client`}},
		{"private_key_jwt without key", "clients:\n  - id: batch\n    token_endpoint_auth_method: private_key_jwt\n    grant_types: [client_credentials]\n    jwks: {}\n",
			[]string{`t.yaml:2:5: clients[0].jwks: private_key_jwt needs one of jwks, jwks_uri or public_key_pem`}},
		{"private_key_jwt with two keys", "clients:\n  - id: batch\n    token_endpoint_auth_method: private_key_jwt\n    grant_types: [client_credentials]\n    jwks_uri: https://batch.example/jwks\n    jwks: '{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"a\",\"y\":\"b\"}]}'\n",
			[]string{`t.yaml:5:15: clients[0].jwks_uri: private_key_jwt takes one key source, not jwks and jwks_uri`}},
		{"private key in jwks", "clients:\n  - id: batch\n    token_endpoint_auth_method: private_key_jwt\n    grant_types: [client_credentials]\n    jwks:\n      keys:\n        - {kty: EC, crv: P-256, x: a, y: b, d: c}\n",
			[]string{`t.yaml:6:7: clients[0].jwks: keys[0] is a private key; register the public key only`}},
		{"key source without private_key_jwt", "clients:\n  - id: a\n    secret: s\n    grant_types: [client_credentials]\n    jwks_uri: https://a.example/jwks\n",
			[]string{`t.yaml:5:15: clients[0].jwks_uri: is only used with token_endpoint_auth_method private_key_jwt`}},
		{"bad public key pem", "clients:\n  - id: batch\n    token_endpoint_auth_method: private_key_jwt\n    grant_types: [client_credentials]\n    public_key_pem: not a key\n",
			[]string{`t.yaml:5:21: clients[0].public_key_pem: is not PEM`}},
		{"relative redirect uri", "clients:\n  - id: a\n    secret: s\n    redirect_uris: [/callback]\n    post_logout_redirect_uris: [\"https://a.example/#x\"]\n",
			[]string{
				`t.yaml:4:21: clients[0].redirect_uris[0]: "/callback" is not an absolute URL`,
				`t.yaml:5:33: clients[0].post_logout_redirect_uris[0]: "https://a.example/#x" must not have a #fragment`,
			}},
		{"authorization_code without redirect uris", "clients:\n  - id: a\n    secret: s\n    grant_types: [authorization_code]\n",
			[]string{`t.yaml:2:5: clients[0].redirect_uris: a client with the authorization_code grant needs at least one redirect URI`}},
		{"default grant type needs redirect uris", "clients:\n  - id: a\n    secret: s\n    redirect_uris: []\n",
			[]string{`t.yaml:4:20: clients[0].redirect_uris: a client with the authorization_code grant needs at least one redirect URI (grant_types defaults to [authorization_code])`}},
		{"reserved issuer name and unknown scope target", "trusted_issuers:\n  - name: user\n    issuer: https://e.example\n    audience: api\n    scope_map: {Files.Read: files.read}\n",
			[]string{
				`t.yaml:2:11: trusted_issuers[0].name: "user" is reserved: principals user:… already mean Flowgate's own`,
				`t.yaml:5:29: trusted_issuers[0].scope_map.Files.Read: "files.read" is not one of workflows.read, workflows.start, tasks, flows.invoke, data.read, scim, admin`,
			}},
		{"bad issuer url", "trusted_issuers:\n  - name: e\n    issuer: e.example\n    audience: api\n",
			[]string{`t.yaml:3:13: trusted_issuers[0].issuer: "e.example" is not an absolute http(s) URL`}},
		{"oauth server rules", "oauth_servers:\n  - name: g\n    metadata_url: https://g.example/.well-known/openid-configuration\n    client_id: c\n    client_auth: private_key_jwt\n    client_secret: s\n    params: {client_id: other, resource: \"https://r.example\"}\n",
			[]string{
				`t.yaml:2:5: oauth_servers[0].private_key_file: is required for client_auth private_key_jwt`,
				`t.yaml:6:20: oauth_servers[0].client_secret: is not used with client_auth private_key_jwt; remove it`,
				`t.yaml:7:25: oauth_servers[0].params.client_id: client_id is set by Flowgate itself and cannot be overridden`,
			}},
		{"explicit flows folder missing", "flows: ./no-such-flows\n",
			[]string{`t.yaml:1:8: flows: stat ./no-such-flows: no such file or directory`}},
		{"limits", "limits:\n  max_steps: 0\n  max_vars: 1 MB of it\n  max_var: 1\n",
			[]string{`t.yaml:2:14: limits.max_steps: "0" is not a whole number above zero`,
				`t.yaml:3:13: limits.max_vars: "1 MB of it" is not a size (such as 1MiB, 512KiB, 2MB or a number of bytes)`,
				`t.yaml:4:3: limits.max_var: unknown key (did you mean max_vars?)`}},
		{"limits zero size and fraction", "limits:\n  max_vars: 0KiB\n  max_steps: 1.5\n",
			[]string{`t.yaml:2:13: limits.max_vars: "0KiB" must be larger than zero`,
				`t.yaml:3:14: limits.max_steps: "1.5" is not a whole number above zero`}},
		{"second document", "server:\n  addr: \":1\"\n---\nflows: x\n",
			[]string{`t.yaml:3:1: a configuration file holds one YAML document; remove the second ---`}},
		{"top level not a mapping", "- a\n- b\n",
			[]string{`t.yaml:1:1: must be a mapping, not a list`}},
		{"empty list entry", "users:\n  - username: a\n    roles: [admin, \"\"]\n",
			[]string{`t.yaml:3:20: users[0].roles[1]: must not be empty`}},
		{"bad egress entries", "egress:\n  allow: [10.0.0.0/8, 10.0.0.0/33]\n  deny:\n    - 300.1.1.1\n    - \"not a host\"\n  allows: []\n",
			[]string{
				`t.yaml:2:23: egress.allow[1]: "10.0.0.0/33" is not a CIDR: netip.ParsePrefix("10.0.0.0/33"): prefix length out of range`,
				`t.yaml:4:7: egress.deny[0]: "300.1.1.1" is not an IP address: ParseAddr("300.1.1.1"): IPv4 field has value >255`,
				`t.yaml:5:7: egress.deny[1]: "not a host" is not a CIDR, an IP address or a host name`,
				`t.yaml:6:3: egress.allows: unknown key (did you mean allow?)`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml), "t.yaml")
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			if c != nil {
				t.Errorf("Parse returned a config with the error")
			}
			if got := lines(err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestMultipleErrorsReportedTogether(t *testing.T) {
	const doc = `server:
  addr: nowhere
auth:
  signing_alg: none
  session:
    idle_timeout: soon
users:
  - username: alice
    password: a
    password_hash: b
clients:
  - id: portal
    colour: blue
`
	_, err := Parse([]byte(doc), "multi.yaml")
	want := []string{
		`multi.yaml:2:9: server.addr: "nowhere" is not a listen address such as :8080 or 127.0.0.1:8080`,
		`multi.yaml:4:16: auth.signing_alg: "none" is not one of ES256, RS256, EdDSA`,
		`multi.yaml:6:19: auth.session.idle_timeout: "soon" is not a duration (such as 90s, 20m, 1h30m, 7d)`,
		`multi.yaml:10:20: users[0].password_hash: is not an argon2id PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash)`,
		`multi.yaml:10:20: users[0].password_hash: give password or password_hash, not both`,
		`multi.yaml:12:5: clients[0].secret: is required for client_secret_basic (the default token_endpoint_auth_method); use token_endpoint_auth_method: none for a public client`,
		`multi.yaml:12:5: clients[0].redirect_uris: a client with the authorization_code grant needs at least one redirect URI (grant_types defaults to [authorization_code])`,
		`multi.yaml:13:5: clients[0].colour: unknown key (clients[0] takes allowed_origins, audiences, consent, dpop, grant_types, id, jwks, jwks_uri, name, post_logout_redirect_uris, public_key_pem, redirect_uris, roles, scopes, secret, token_endpoint_auth_method)`,
	}
	if got := lines(err); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Line != 2 || fe.Path != "server.addr" {
		t.Errorf("errors.As FieldError = %+v", fe)
	}
}

func TestYAMLSyntaxError(t *testing.T) {
	_, err := Parse([]byte("server:\n  addr: \":8080\"\n\tpublic_url: x\n"), "broken.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.File != "broken.yaml" || fe.Line == 0 {
		t.Fatalf("error %q: want a FieldError with file and line, got %+v", err, fe)
	}
	if !strings.HasPrefix(err.Error(), "broken.yaml:3: invalid YAML: ") {
		t.Errorf("error %q: want broken.yaml:3: invalid YAML: …", err)
	}
}

func TestOverrideErrors(t *testing.T) {
	tests := []struct {
		name string
		o    Overrides
		env  map[string]string
		want []string
	}{
		{"env public url", Overrides{}, map[string]string{EnvPublicURL: "not-a-url"},
			[]string{`FLOWGATE_PUBLIC_URL: "not-a-url" is not an absolute http(s) URL`}},
		{"flag addr", Overrides{Addr: "localhost"}, nil,
			[]string{`--addr: "localhost" is not a listen address such as :8080 or 127.0.0.1:8080`}},
		{"env database without echoing it", Overrides{}, map[string]string{EnvDatabase: "mysql://root:hunter2@db/x"},
			[]string{`FLOWGATE_DATABASE: must be sqlite:PATH or a postgres:// URL`}},
		{"all at once", Overrides{Database: "sqlite:"}, map[string]string{EnvAddr: ":99999", EnvPublicURL: "https://x.example/?a=b"},
			[]string{
				`FLOWGATE_ADDR: ":99999" has no valid port number`,
				`FLOWGATE_PUBLIC_URL: "https://x.example/?a=b" must not have a query`,
				`--database: sqlite: needs a file path, such as sqlite:./flowgate.db`,
			}},
		{"a flag hides a bad env value", Overrides{PublicURL: "https://ok.example"}, map[string]string{EnvPublicURL: "not-a-url"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.o, env(tt.env))
			if got := lines(err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestMissingConfigFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	for _, tt := range []struct {
		o    Overrides
		env  map[string]string
		from string
	}{
		{Overrides{ConfigFile: missing}, nil, "--config: "},
		{Overrides{}, map[string]string{EnvConfig: missing}, "FLOWGATE_CONFIG: "},
	} {
		_, err := Load(tt.o, env(tt.env))
		if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), tt.from) {
			t.Errorf("Load: %v, want %s… wrapping fs.ErrNotExist", err, tt.from)
		}
	}
}

func TestFileErrorsAndEnvErrorsTogether(t *testing.T) {
	f := writeFile(t, "f.yaml", "auth:\n  signing_alg: HS256\n")
	_, err := Load(Overrides{ConfigFile: f}, env(map[string]string{EnvAddr: "x"}))
	want := []string{
		f + `:2:16: auth.signing_alg: "HS256" is not one of ES256, RS256, EdDSA`,
		`FLOWGATE_ADDR: "x" is not a listen address such as :8080 or 127.0.0.1:8080`,
	}
	if got := lines(err); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	const s = "Sup3rS3cretValue"
	docs := []string{
		"users:\n  - username: a\n    password: " + s + "\n    password_hash: " + s + "\n",
		"users:\n  - username: a\n    password_hash: \"$argon2id$v=19$m=1,t=1,p=1$" + s + "$" + s + "\"\n",
		"clients:\n  - id: a\n    token_endpoint_auth_method: none\n    secret: " + s + "\n    redirect_uris: [https://a.example/cb]\n",
		"clients:\n  - id: a\n    token_endpoint_auth_method: private_key_jwt\n    secret: " + s + "\n    grant_types: [client_credentials]\n",
		"clients:\n  - id: a\n    secret: {value: " + s + "}\n",
		"oauth_servers:\n  - name: g\n    client_id: c\n    client_secret: [" + s + "]\n",
		"oauth_servers:\n  - name: g\n    token_endpoint: https://g.example/t\n    client_id: c\n    client_auth: private_key_jwt\n    client_secret: " + s + "\n",
		"identity_providers:\n  - name: g\n    issuer: https://g.example\n    client_id: c\n    client_secret: " + s + "\n    scopes: [email]\n",
		"secrets:\n  key: " + s + "\n",
		"database: \"postgres://u:" + s + "@db/x\"\nauth:\n  bogus: 1\n",
		"database: \"mysql://u:" + s + "@db/x\"\n",
		"trusted_issuers:\n  - name: e\n    issuer: \"https://u:" + s + "@e.example\"\n    audience: a\n",
		"clients:\n  - id: a\n    secret: s\n    redirect_uris: [\"https://u:" + s + "@a.example/#frag\"]\n",
	}
	for i, doc := range docs {
		_, err := Parse([]byte(doc), "s.yaml")
		if err == nil {
			t.Errorf("doc %d: no error", i)
			continue
		}
		if strings.Contains(err.Error(), s) {
			t.Errorf("doc %d: error leaks the secret:\n%v", i, err)
		}
	}
	_, err := Load(Overrides{Database: "mysql://u:" + s + "@db/x"}, env(map[string]string{EnvPublicURL: "https://u:" + s + "@x.example"}))
	if err == nil || strings.Contains(err.Error(), s) {
		t.Errorf("Load error leaks the secret or is nil: %v", err)
	}
}

func TestRedacted(t *testing.T) {
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data, "full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Secrets.Key = "env-secret-key"
	secrets := []string{
		"env-secret-key", "db-pass-123", "alice-password-2024", "CVQxeCgZjvxymR7WIA3PyMmGJoylU",
		"portal-secret-0123456789", "graph-secret-abcdef", "google-secret-xyz", "select_account",
	}
	r := c.Redacted()
	for _, out := range []string{c.String(), r.String()} {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("String() leaks %q:\n%s", s, out)
			}
		}
		if !strings.Contains(out, "portal") || !strings.Contains(out, "https://flowgate.example.com") {
			t.Errorf("String() lost the non-secret values:\n%s", out)
		}
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("start", "config", c)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("start", "config", c)
	outs := []string{logged.String(), fmt.Sprintf("%v", *c), fmt.Sprintf("%+v", c)}
	for _, out := range outs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("log or print leaks %q:\n%s", s, out)
			}
		}
	}
	if !strings.Contains(logged.String(), "portal") {
		t.Errorf("log lost the non-secret values:\n%s", logged.String())
	}
	eq(t, redactDSN("postgres://db.example/flowgate?user=u&password=pw-in-query"), "postgres://db.example/flowgate?password=xxxxx&user=u")
	eq(t, r.Users[0].Password, redactedMark)
	eq(t, r.Users[1].Password, "") // unset secrets stay visibly unset
	eq(t, r.Database, "postgres://flowgate:xxxxx@db.example.com:5432/flowgate?sslmode=require")
	// The original must be untouched, including shared slices and maps.
	r.Users[0].Roles[0] = "changed"
	r.TrustedIssuers[0].ScopeMap["x"] = "y"
	eq(t, c.Users[0].Password, "alice-password-2024")
	eq(t, c.Users[0].Roles[0], "employee")
	eq(t, len(c.TrustedIssuers[0].ScopeMap), 3)
	eq(t, c.OAuthServers[0].Params["prompt_hint"], "select_account")
}

func TestDatabaseIsSQLite(t *testing.T) {
	tests := []struct {
		dsn, path string
		ok        bool
	}{
		{"sqlite:./flowgate.db", "./flowgate.db", true},
		{"sqlite:/var/lib/flowgate/f.db", "/var/lib/flowgate/f.db", true},
		{"postgres://db/flowgate", "", false},
	}
	for _, tt := range tests {
		c := &Config{Database: tt.dsn}
		path, ok := c.DatabaseIsSQLite()
		if path != tt.path || ok != tt.ok {
			t.Errorf("DatabaseIsSQLite(%q) = %q, %v; want %q, %v", tt.dsn, path, ok, tt.path, tt.ok)
		}
	}
}

func TestClientKeySources(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	privDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	priv := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	indent := func(b []byte) string {
		return "      " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n      ")
	}
	client := func(pemText string) string {
		return "clients:\n  - id: batch\n    token_endpoint_auth_method: private_key_jwt\n    grant_types: [client_credentials]\n    public_key_pem: |\n" + indent([]byte(pemText)) + "\n"
	}

	c, err := Parse([]byte(client(string(pub))), "k.yaml")
	if err != nil {
		t.Fatalf("public key PEM refused: %v", err)
	}
	eq(t, strings.TrimSpace(c.Clients[0].PublicKeyPEM), strings.TrimSpace(string(pub)))

	_, err = Parse([]byte(client(string(priv))), "k.yaml")
	want := []string{`k.yaml:5:21: clients[0].public_key_pem: is a private key; register the public key only`}
	if got := lines(err); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err != nil && strings.Contains(err.Error(), "PRIVATE KEY-----") {
		t.Errorf("error leaks the key: %v", err)
	}

	// An inline JWKS may be given as JSON text too.
	c, err = Parse([]byte("clients:\n  - id: batch\n    token_endpoint_auth_method: private_key_jwt\n    grant_types: [client_credentials]\n    jwks: '{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"abc\"}]}'\n"), "k.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, c.Clients[0].JWKS, `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"abc"}]}`)
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	doc := `defaults: &client
  secret: shared-secret
  grant_types: [client_credentials]
clients:
  - <<: *client
    id: a
  - <<: *client
    id: b
    grant_types: [authorization_code]
    redirect_uris: [https://b.example/cb]
`
	// "defaults" is not a Flowgate key: anchors must live under known keys.
	_, err := Parse([]byte(doc), "m.yaml")
	want := []string{`m.yaml:1:1: defaults: unknown key (the configuration file takes apis, auth, clients, database, egress, flows, identity_providers, limits, notifications, oauth_servers, secrets, server, trusted_issuers, users)`}
	if got := lines(err); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	doc = `clients:
  - &base
    id: a
    secret: shared-secret
    grant_types: [client_credentials]
  - <<: *base
    id: b
    grant_types: [authorization_code]
    redirect_uris: [https://b.example/cb]
`
	c, err := Parse([]byte(doc), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, c.Clients[1].ID, "b")
	eq(t, c.Clients[1].Secret, "shared-secret")
	eq(t, c.Clients[1].GrantTypes[0], "authorization_code")
}

func TestClientValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Client
		want []string
	}{
		{"valid confidential", Client{ID: "portal", Secret: "generated", RedirectURIs: []string{"https://p.example/cb"}, GrantTypes: []string{"authorization_code", "refresh_token"}}, nil},
		{"valid public with defaults left empty", Client{ID: "spa", TokenEndpointAuthMethod: "none", RedirectURIs: []string{"http://127.0.0.1:9000/cb"}}, nil},
		{"every rule names its key", Client{
			ID: "bad id", TokenEndpointAuthMethod: "private_key_jwt", Secret: "Sup3rS3cret",
			GrantTypes: []string{"implicit"}, RedirectURIs: []string{"/cb"}, Consent: "maybe",
		}, []string{
			`id: "bad id" may only contain visible ASCII characters`,
			`redirect_uris[0]: "/cb" is not an absolute URL`,
			`grant_types[0]: "implicit" is not one of authorization_code, refresh_token, client_credentials`,
			`consent: "maybe" is not one of user, admin`,
			`secret: is not used with private_key_jwt; remove it`,
			`jwks: private_key_jwt needs one of jwks, jwks_uri or public_key_pem`,
		}},
		{"missing id and redirect", Client{Secret: "generated"}, []string{
			`id: is required`,
			`redirect_uris: a client with the authorization_code grant needs at least one redirect URI (grant_types defaults to [authorization_code])`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if got := lines(err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if err != nil && strings.Contains(err.Error(), "Sup3rS3cret") {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
}

func TestLimitsSizes(t *testing.T) {
	for in, want := range map[string]int64{
		"1MiB": 1 << 20, "512KiB": 512 << 10, "2GiB": 2 << 30, "2MB": 2_000_000, "3KB": 3000,
		"100B": 100, "4096": 4096, "1 MiB": 1 << 20,
	} {
		c, err := Parse([]byte("limits:\n  max_vars: "+in+"\n  max_steps: 25\n"), "t.yaml")
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if c.Limits.MaxVars != want || c.Limits.MaxSteps != 25 {
			t.Errorf("%q: limits %+v, want max_vars %d", in, c.Limits, want)
		}
	}
	for _, in := range []string{"1TiB", "-1MiB", "MiB", "1.5MiB", "9999999999999GiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded", in)
		}
	}
}

func TestNotificationsProblems(t *testing.T) {
	for src, want := range map[string]string{
		"notifications:\n  smtp: {host: \"mail:25\"}\n":      `c.yaml:2:16: notifications.smtp.host: "mail:25": want a host name or address; the port goes in port`,
		"notifications:\n  smtp: {from: nobody}\n":           `c.yaml:2:16: notifications.smtp.from: "nobody" is not an email address (such as Flowgate <flowgate@example.com>): mail: missing '@' or angle-addr`,
		"notifications:\n  smtp: {port: 70000}\n":            `c.yaml:2:16: notifications.smtp.port: 70000 is not a port (1-65535)`,
		"notifications:\n  smtp: {host: m, password: x}\n":   `c.yaml:2:29: notifications.smtp.password: a password needs a username`,
		"notifications:\n  smtp: {host: m, startls: true}\n": `c.yaml:2:19: notifications.smtp.startls: unknown key (did you mean starttls?)`,
	} {
		_, err := Parse([]byte(src), "c.yaml")
		if err == nil || err.Error() != want {
			t.Errorf("%q:\n got %v\nwant %s", src, err, want)
		}
	}
}
