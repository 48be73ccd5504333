// Package config resolves Flowgate's configuration (docs/configuration.md): the YAML
// file, the FLOWGATE_* environment variables and the command-line flags.
//
// The whole file is validated up front, including sections whose features
// are built later, so that a typo is reported at start with its key path,
// line and column rather than silently ignored. Every problem found is
// reported at once (one per line), and no error message ever contains a
// secret value.
//
// Durations take Go syntax ("90s", "20m", "720h") and also whole days
// ("30d", "1d12h").
//
// Relative paths (the SQLite database, secrets.key_file, flows,
// oauth_servers[].private_key_file) are relative to the working directory,
// not to the configuration file, as the defaults are (docs/configuration.md).
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the resolved configuration. Load and Parse return it validated
// and with every default applied, so readers never need to re-check it.
type Config struct {
	Server            Server             `yaml:"server"`
	Database          string             `yaml:"database"`
	Secrets           Secrets            `yaml:"secrets"`
	Auth              Auth               `yaml:"auth"`
	Users             []User             `yaml:"users,omitempty"`
	Clients           []Client           `yaml:"clients,omitempty"`
	TrustedIssuers    []TrustedIssuer    `yaml:"trusted_issuers,omitempty"`
	OAuthServers      []OAuthServer      `yaml:"oauth_servers,omitempty"`
	IdentityProviders []IdentityProvider `yaml:"identity_providers,omitempty"`
	APIs              APIs               `yaml:"apis"`
	Egress            Egress             `yaml:"egress"`
	// Flows is a file or folder of flow definitions deployed at start. When
	// it was set explicitly it exists; the default ./flows may not, and
	// then there is nothing to deploy.
	Flows string `yaml:"flows"`
	// Limits bounds what one flow instance may use.
	Limits Limits `yaml:"limits"`
	// Notifications is how Flowgate sends email: the email step and task
	// notifications.
	Notifications Notifications `yaml:"notifications"`
}

// Notifications configures outgoing email.
type Notifications struct {
	SMTP SMTP `yaml:"smtp"`
	// TaskAssigned emails each assignee of a new task a link to it (and
	// the added ones on escalation, and all of them on a reminder).
	TaskAssigned bool `yaml:"task_assigned"`
}

// SMTP is the mail server email goes through. Email is off while Host is
// empty.
type SMTP struct {
	Host     string `yaml:"host"`
	Port     int    `yaml:"port"`
	Username string `yaml:"username,omitempty"`
	// Password is sent only with Username, and only over TLS.
	Password string `yaml:"password,omitempty"`
	// From is the sender, an address with an optional name
	// ("Flowgate <flowgate@example.com>").
	From string `yaml:"from"`
	// StartTLS requires STARTTLS before anything else is sent.
	StartTLS bool `yaml:"starttls"`
}

// Defaults of SMTP.
const (
	DefaultSMTPPort = 587
	DefaultSMTPFrom = "Flowgate <flowgate@example.com>"
)

// Limits bounds what one flow instance may use, so that a flow looping
// forever or growing without end fails instead of filling the database.
type Limits struct {
	// MaxSteps is how many steps one instance may run over its whole
	// life (retries and loops through switch count).
	MaxSteps int `yaml:"max_steps"`
	// MaxVars is the largest an instance's vars may grow, in bytes of
	// JSON; written as 1MiB, 512KiB, 2MB or a number of bytes.
	MaxVars int64 `yaml:"max_vars"`
}

// Defaults of Limits.
const (
	DefaultMaxSteps = 10000
	DefaultMaxVars  = 1 << 20
)

// Server is where Flowgate listens and how it is reached.
type Server struct {
	Addr string `yaml:"addr"`
	// PublicURL is the issuer and the base of every absolute link; it has
	// no trailing slash.
	PublicURL string `yaml:"public_url"`
	// MetricsAddr, when set, is a separate listen address for /metrics,
	// which the main address then does not serve.
	MetricsAddr string `yaml:"metrics_addr,omitempty"`
	// TrustedProxies are the CIDRs (or single addresses) of reverse
	// proxies whose X-Forwarded-For and X-Forwarded-Proto are believed.
	TrustedProxies []string `yaml:"trusted_proxies,omitempty"`
	// TLS, when both files are set, makes Flowgate serve HTTPS itself.
	TLS TLS `yaml:"tls"`
}

// TLS names the certificate (PEM, the chain leaf first) and private key
// files; both are re-read when they change.
type TLS struct {
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
}

// Enabled reports whether HTTPS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" && t.KeyFile != "" }

// Secrets locates the key that encrypts secrets at rest.
type Secrets struct {
	KeyFile string `yaml:"key_file,omitempty"`
	// Key comes from FLOWGATE_SECRET_KEY only: a key written into the
	// configuration file would sit next to the data it protects.
	Key string `yaml:"key,omitempty"`
}

// Auth configures the built-in authorization server (docs/security.md).
type Auth struct {
	AccessTokenTTL     time.Duration `yaml:"access_token_ttl"`
	IDTokenTTL         time.Duration `yaml:"id_token_ttl"`
	RefreshTokens      bool          `yaml:"refresh_tokens"`
	RefreshTokenTTL    time.Duration `yaml:"refresh_token_ttl"`
	SigningAlg         string        `yaml:"signing_alg"`
	Session            Session       `yaml:"session"`
	ShowDetailedErrors bool          `yaml:"show_detailed_errors"`
	AuditLog           bool          `yaml:"audit_log"`
	LogoffRedirectURL  string        `yaml:"logoff_redirect_url,omitempty"`
	// DPoPNonce makes every DPoP proof carry a nonce the server handed
	// out (the DPoP-Nonce header), which bounds how long a proof made
	// ahead of time is good for.
	DPoPNonce bool  `yaml:"dpop_nonce"`
	Login     Login `yaml:"login"`
	// MFA is the second-factor policy for local accounts: "off" (none
	// offered), "optional" (people may enrol) or "required" (everyone
	// signing in with a password enrols and uses one).
	MFA string `yaml:"mfa"`
}

// The values of auth.mfa.
const (
	MFAOff      = "off"
	MFAOptional = "optional"
	MFARequired = "required"
)

// Login configures the sign-in page.
type Login struct {
	// Local shows the username and password form; false leaves only the
	// identity providers' buttons.
	Local bool `yaml:"local"`
	// DefaultIdentityProvider sends every sign-in straight to this
	// identity provider, skipping the page.
	DefaultIdentityProvider string `yaml:"default_identity_provider,omitempty"`
}

// Session configures the login session cookie.
type Session struct {
	Cookie      string        `yaml:"cookie"`
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	SSO         bool          `yaml:"sso"`
}

// User is a declared user, created or updated by username at start.
type User struct {
	Username string `yaml:"username"`
	// Password is plain text; at most one of Password and PasswordHash is
	// set. Neither is allowed: such a user signs in only through federation
	// or after `flowgate user passwd`.
	Password string `yaml:"password,omitempty"`
	// PasswordHash is an argon2id PHC string.
	PasswordHash string   `yaml:"password_hash,omitempty"`
	Email        string   `yaml:"email,omitempty"`
	Name         string   `yaml:"name,omitempty"`
	Roles        []string `yaml:"roles,omitempty"`
}

// Client is a declared OAuth client of the built-in authorization server.
type Client struct {
	ID                     string   `yaml:"id"`
	Name                   string   `yaml:"name,omitempty"`
	Secret                 string   `yaml:"secret,omitempty"`
	RedirectURIs           []string `yaml:"redirect_uris,omitempty"`
	PostLogoutRedirectURIs []string `yaml:"post_logout_redirect_uris,omitempty"`
	// GrantTypes defaults to [authorization_code], as in RFC 7591.
	GrantTypes []string `yaml:"grant_types"`
	Scopes     []string `yaml:"scopes,omitempty"`
	// TokenEndpointAuthMethod defaults to client_secret_basic, as in RFC 7591.
	TokenEndpointAuthMethod string `yaml:"token_endpoint_auth_method"`
	// JWKS is the inline JWKS as JSON text; "" when none. For
	// private_key_jwt exactly one of JWKS, JWKSURI and PublicKeyPEM is set.
	JWKS         string `yaml:"jwks,omitempty"`
	JWKSURI      string `yaml:"jwks_uri,omitempty"`
	PublicKeyPEM string `yaml:"public_key_pem,omitempty"`
	// Consent is user (the default) or admin.
	Consent string   `yaml:"consent"`
	DPoP    bool     `yaml:"dpop"`
	Roles   []string `yaml:"roles,omitempty"`
	// AllowedOrigins are the browser origins (scheme://host[:port]) that
	// get CORS answers, for single-page apps.
	AllowedOrigins []string `yaml:"allowed_origins,omitempty"`
	// Audiences are the resources (RFC 8707) besides the public URL this
	// client may ask tokens for with the resource parameter.
	Audiences []string `yaml:"audiences,omitempty"`
}

// TrustedIssuer is an external issuer whose access tokens Flowgate's APIs
// accept (docs/api.md).
type TrustedIssuer struct {
	Name   string `yaml:"name"`
	Issuer string `yaml:"issuer"`
	// MetadataURL defaults to Issuer + /.well-known/openid-configuration.
	MetadataURL string `yaml:"metadata_url"`
	Audience    string `yaml:"audience"`
	// SubjectClaim defaults to sub.
	SubjectClaim string `yaml:"subject_claim"`
	// ScopeClaim defaults to scope (RFC 9068); Entra ID uses scp.
	ScopeClaim string `yaml:"scope_claim"`
	// RolesClaim defaults to roles.
	RolesClaim string `yaml:"roles_claim"`
	// ScopeMap maps an external scope to a Flowgate scope.
	ScopeMap map[string]string `yaml:"scope_map,omitempty"`
}

// OAuthServer is an outbound authorization server that flows get tokens
// from (docs/flows.md, the OAuth steps).
type OAuthServer struct {
	Name                  string `yaml:"name"`
	MetadataURL           string `yaml:"metadata_url,omitempty"`
	AuthorizationEndpoint string `yaml:"authorization_endpoint,omitempty"`
	TokenEndpoint         string `yaml:"token_endpoint,omitempty"`
	// RefreshEndpoint defaults to TokenEndpoint when that is given; with
	// only MetadataURL it stays empty and the discovered token endpoint
	// is used.
	RefreshEndpoint    string `yaml:"refresh_endpoint,omitempty"`
	RevocationEndpoint string `yaml:"revocation_endpoint,omitempty"`
	ClientID           string `yaml:"client_id"`
	ClientSecret       string `yaml:"client_secret,omitempty"`
	// ClientAuth defaults to client_secret_basic.
	ClientAuth     string            `yaml:"client_auth"`
	PrivateKeyFile string            `yaml:"private_key_file,omitempty"`
	KeyID          string            `yaml:"key_id,omitempty"`
	Scopes         []string          `yaml:"scopes,omitempty"`
	Params         map[string]string `yaml:"params,omitempty"`
	UsePrompt      bool              `yaml:"use_prompt"`
	// UsePKCE is on unless a provider that rejects PKCE turns it off.
	UsePKCE bool `yaml:"use_pkce"`
	// RedirectURI defaults to the public URL + /oauth-callback.
	RedirectURI string `yaml:"redirect_uri"`
	// Template (microsoft-graph, google, github, salesforce, okta, slack)
	// fills the endpoints, scopes and parameters left out.
	Template string `yaml:"template,omitempty"`
	// Tenant is the Entra tenant of microsoft-graph (default common).
	Tenant string `yaml:"tenant,omitempty"`
	// Domain is Salesforce's My Domain host or Okta's org domain.
	Domain string `yaml:"domain,omitempty"`
	// DPoP sends DPoP proofs (RFC 9449) made with a key Flowgate keeps
	// for this server on token requests and on http steps using its tokens.
	DPoP bool `yaml:"dpop"`
}

// IdentityProvider is an upstream OpenID provider users can sign in with
// (federation, docs/configuration.md).
type IdentityProvider struct {
	Name string `yaml:"name"`
	// Title is the button's "Sign in with TITLE"; defaults to Name.
	Title string `yaml:"title,omitempty"`
	// Template is entra, google, okta, keycloak, flowgate or "" (any
	// OpenID provider); it derives the issuer and claim defaults.
	Template string `yaml:"template,omitempty"`
	// Tenant is Entra's tenant id or Okta's org domain.
	Tenant       string `yaml:"tenant,omitempty"`
	Issuer       string `yaml:"issuer"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret,omitempty"`
	// ClientAuth is client_secret_basic (default), client_secret_post or
	// private_key_jwt (with PrivateKeyFile and KeyID).
	ClientAuth     string `yaml:"client_auth"`
	PrivateKeyFile string `yaml:"private_key_file,omitempty"`
	KeyID          string `yaml:"key_id,omitempty"`
	// Scopes defaults to [openid, profile, email] and always holds openid.
	Scopes []string `yaml:"scopes"`
	// MetadataURL defaults to Issuer + /.well-known/openid-configuration.
	MetadataURL string `yaml:"metadata_url"`
	// LinkBy is email (an existing user with the provider's verified
	// address is linked) or none; default email.
	LinkBy string `yaml:"link_by"`
	// CreateUsers makes a user at a person's first sign-in; default true.
	CreateUsers bool `yaml:"create_users"`
	// UsernameClaim names the claim a created user's name comes from;
	// default preferred_username.
	UsernameClaim string `yaml:"username_claim"`
	// RolesClaim names the claim whose values RoleMap turns into roles;
	// default groups.
	RolesClaim   string            `yaml:"roles_claim"`
	RoleMap      map[string]string `yaml:"role_map,omitempty"`
	DefaultRoles []string          `yaml:"default_roles,omitempty"`
	// SubjectClaim is the claim a link remembers a person by: sub, or
	// oid for Entra (the same for every application of the tenant). Set
	// by the template, not by the file.
	SubjectClaim string `yaml:"-"`
}

// APIs switches Flowgate's APIs on and off.
type APIs struct {
	Workflow  bool `yaml:"workflow"`
	Invoke    bool `yaml:"invoke"`
	BasicAuth bool `yaml:"basic_auth"`
	// OData is the Data API for reporting tools (/odata/v4/), on by default.
	OData bool `yaml:"odata"`
	// SCIM is user provisioning from an identity provider (/scim/v2/), off
	// by default.
	SCIM bool `yaml:"scim"`
}

// Egress says where http steps and admin-set URLs (issuer metadata, OAuth
// endpoints, clients' jwks_uri) may connect; see internal/egress for the
// rules. Each entry is a CIDR, an IP address or a host name.
type Egress struct {
	// Allow lists what is allowed although denied by default or by Deny.
	Allow []string `yaml:"allow,omitempty"`
	// Deny is added to the defaults: loopback, link-local and Flowgate's
	// own listen address.
	Deny []string `yaml:"deny,omitempty"`
}

// Overrides are the values given on the command line; empty means "not given".
type Overrides struct{ ConfigFile, Addr, PublicURL, Database string }

// Environment variables read by Load.
const (
	EnvConfig    = "FLOWGATE_CONFIG"
	EnvAddr      = "FLOWGATE_ADDR"
	EnvPublicURL = "FLOWGATE_PUBLIC_URL"
	EnvDatabase  = "FLOWGATE_DATABASE"
	EnvSecretKey = "FLOWGATE_SECRET_KEY"
)

// Default returns the configuration used when nothing is configured.
func Default() *Config {
	return &Config{
		Server:   Server{Addr: ":8080", PublicURL: "http://localhost:8080"},
		Database: "sqlite:./flowgate.db",
		Auth: Auth{
			AccessTokenTTL:  time.Hour,
			IDTokenTTL:      time.Hour,
			RefreshTokens:   true,
			RefreshTokenTTL: 720 * time.Hour,
			SigningAlg:      "ES256",
			Session:         Session{Cookie: "persistent", IdleTimeout: 20 * time.Minute, SSO: true},
			AuditLog:        true,
			Login:           Login{Local: true},
			MFA:             MFAOptional,
		},
		APIs:   APIs{Workflow: true, Invoke: true, OData: true},
		Flows:  "./flows",
		Limits: Limits{MaxSteps: DefaultMaxSteps, MaxVars: DefaultMaxVars},
		Notifications: Notifications{
			SMTP:         SMTP{Port: DefaultSMTPPort, From: DefaultSMTPFrom, StartTLS: true},
			TaskAssigned: true,
		},
	}
}

// Load resolves the configuration: flags beat environment variables beat the file beat defaults.
// getenv is os.Getenv in production (FLOWGATE_CONFIG, FLOWGATE_ADDR, FLOWGATE_PUBLIC_URL, FLOWGATE_DATABASE, FLOWGATE_SECRET_KEY);
// nil means an empty environment.
//
// No file is read unless --config or FLOWGATE_CONFIG names one. When the
// public URL is given nowhere it is derived from the listen address.
func Load(o Overrides, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	cfg, publicURLSet := Default(), false
	var errs []error

	file, fileFrom := pick(o.ConfigFile, "--config", getenv(EnvConfig), EnvConfig)
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, &FieldError{Path: fileFrom, Err: err}
		}
		parsed, set, ferrs := parse(data, file, getenv)
		if len(ferrs) > 0 {
			// Keep going with the defaults so that problems in the
			// environment and flags are reported in the same run.
			errs = append(errs, ferrs...)
		} else {
			cfg, publicURLSet = parsed, set
		}
	}

	if v, from := pick(o.Addr, "--addr", getenv(EnvAddr), EnvAddr); v != "" {
		if err := checkAddr(v); err != nil {
			errs = append(errs, &FieldError{Path: from, Err: err})
		}
		cfg.Server.Addr = v
	}
	if v, from := pick(o.PublicURL, "--public-url", getenv(EnvPublicURL), EnvPublicURL); v != "" {
		u, err := normalizePublicURL(v)
		if err != nil {
			errs = append(errs, &FieldError{Path: from, Err: err})
		}
		cfg.Server.PublicURL, publicURLSet = u, true
	}
	if v, from := pick(o.Database, "--database", getenv(EnvDatabase), EnvDatabase); v != "" {
		if err := checkDatabase(v); err != nil {
			errs = append(errs, &FieldError{Path: from, Err: err})
		}
		cfg.Database = v
	}
	if k := strings.TrimSpace(getenv(EnvSecretKey)); k != "" {
		cfg.Secrets.Key = k
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	finalize(cfg, publicURLSet)
	return cfg, nil
}

// Parse reads a configuration file's content alone (no flags, and an
// empty environment, so a ${NAME} reference is an error) and validates
// it. filename is used in error messages only.
func Parse(data []byte, filename string) (*Config, error) {
	cfg, publicURLSet, errs := parse(data, filename, func(string) string { return "" })
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	finalize(cfg, publicURLSet)
	return cfg, nil
}

// pick returns the first non-empty value and the name of its source.
func pick(flag, flagName, env, envName string) (string, string) {
	if flag != "" {
		return flag, flagName
	}
	return env, envName
}

// finalize fills the defaults that depend on other settings. It runs once
// every source has been applied, so a public URL from the environment
// reaches the derived redirect URIs too.
func finalize(c *Config, publicURLSet bool) {
	if !publicURLSet {
		c.Server.PublicURL = publicURLFromAddr(c.Server.Addr)
		if c.Server.TLS.Enabled() {
			c.Server.PublicURL = "https://" + strings.TrimPrefix(c.Server.PublicURL, "http://")
		}
	}
	for i := range c.OAuthServers {
		if c.OAuthServers[i].RedirectURI == "" {
			c.OAuthServers[i].RedirectURI = c.Server.PublicURL + "/oauth-callback"
		}
	}
}

// publicURLFromAddr turns a listen address into the URL a browser on the
// same machine would use: a wildcard host is not reachable, so it becomes
// localhost.
func publicURLFromAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://localhost:8080"
	}
	switch host {
	case "", "0.0.0.0", "::", "[::]":
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// DatabaseIsSQLite reports whether the database is SQLite and, if so, the
// file path after "sqlite:".
func (c *Config) DatabaseIsSQLite() (path string, ok bool) {
	if path, ok = strings.CutPrefix(c.Database, "sqlite:"); !ok {
		return "", false
	}
	return path, true
}

// redactedMark replaces a secret in Redacted; empty secrets stay empty so
// the view still tells whether one was set.
const redactedMark = "REDACTED"

// Redacted returns a deep copy safe to log: passwords, password hashes,
// client secrets, the secret key and a database URL's password are masked.
func (c *Config) Redacted() *Config {
	r := *c
	mask := func(s *string) {
		if *s != "" {
			*s = redactedMark
		}
	}
	mask(&r.Secrets.Key)
	r.Database = redactDSN(r.Database)
	r.Users = slices.Clone(c.Users)
	for i := range r.Users {
		u := &r.Users[i]
		mask(&u.Password)
		mask(&u.PasswordHash)
		u.Roles = slices.Clone(u.Roles)
	}
	r.Clients = slices.Clone(c.Clients)
	for i := range r.Clients {
		cl := &r.Clients[i]
		mask(&cl.Secret)
		cl.RedirectURIs = slices.Clone(cl.RedirectURIs)
		cl.PostLogoutRedirectURIs = slices.Clone(cl.PostLogoutRedirectURIs)
		cl.GrantTypes = slices.Clone(cl.GrantTypes)
		cl.Scopes = slices.Clone(cl.Scopes)
		cl.Roles = slices.Clone(cl.Roles)
	}
	r.TrustedIssuers = slices.Clone(c.TrustedIssuers)
	for i := range r.TrustedIssuers {
		r.TrustedIssuers[i].ScopeMap = maps.Clone(r.TrustedIssuers[i].ScopeMap)
	}
	r.OAuthServers = slices.Clone(c.OAuthServers)
	for i := range r.OAuthServers {
		s := &r.OAuthServers[i]
		mask(&s.ClientSecret)
		s.Scopes = slices.Clone(s.Scopes)
		// Extra parameters are free-form and may carry API keys.
		if len(s.Params) > 0 {
			p := make(map[string]string, len(s.Params))
			for k := range s.Params {
				p[k] = redactedMark
			}
			s.Params = p
		}
	}
	r.IdentityProviders = slices.Clone(c.IdentityProviders)
	for i := range r.IdentityProviders {
		p := &r.IdentityProviders[i]
		mask(&p.ClientSecret)
		p.Scopes = slices.Clone(p.Scopes)
		p.RoleMap = maps.Clone(p.RoleMap)
		p.DefaultRoles = slices.Clone(p.DefaultRoles)
	}
	return &r
}

// redactDSN masks a PostgreSQL URL's password, in the user part or in the
// password query parameter that pgx also reads.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return dsn
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// String renders the redacted configuration as YAML, so printing a Config
// or *Config with %v never leaks a secret. It is a view for people, not a
// file to load (it shows secrets.key, which a file may not hold). The value
// receiver is deliberate: it covers Config values as well as pointers.
func (c Config) String() string {
	out, err := yaml.Marshal(c.Redacted())
	if err != nil {
		return fmt.Sprintf("config: %v", err)
	}
	return string(out)
}

// loggedConfig has no methods, so slog does not resolve it again.
type loggedConfig Config

// LogValue makes slog (including its JSON handler, which ignores String)
// log the redacted configuration; a value receiver, like String, so Config
// values are covered too.
func (c Config) LogValue() slog.Value {
	return slog.AnyValue((*loggedConfig)(c.Redacted()))
}
