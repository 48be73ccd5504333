package store

import (
	"context"
	"time"
)

// Settings are the server settings an administrator can change while
// Flowgate runs (the configuration's trusted_issuers, oauth_servers and apis). The
// configuration file seeds them at start; the admin API edits them.
type Settings interface {
	TrustedIssuers
	OAuthServers
	SettingValues
}

// Where a setting came from: the configuration file applied at start, or
// the admin API. A config entry is rewritten at every start, so the admin
// site can warn that editing it only lasts until the next restart.
const (
	SourceConfig = "config"
	SourceAPI    = "api"
)

// TrustedIssuer is an external issuer whose access tokens Flowgate's APIs
// accept (docs/api.md).
type TrustedIssuer struct {
	// Name is the key and the principal prefix ("<name>:<subject>").
	Name   string
	Issuer string
	// MetadataURL is where the issuer's OpenID metadata is read.
	MetadataURL  string
	Audience     string
	SubjectClaim string
	ScopeClaim   string
	RolesClaim   string
	// ScopeMap maps an external scope to a Flowgate scope; nil when empty.
	ScopeMap  map[string]string
	Source    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// TrustedIssuers stores trusted external issuers.
type TrustedIssuers interface {
	// CreateTrustedIssuer adds an issuer; ErrConflict when the name or
	// the issuer URL is taken (one issuer cannot have two rule sets).
	CreateTrustedIssuer(ctx context.Context, t TrustedIssuer) error
	// UpdateTrustedIssuer replaces every field but CreatedAt; ErrNotFound
	// when there is none, ErrConflict when the issuer URL is another's.
	UpdateTrustedIssuer(ctx context.Context, t TrustedIssuer) error
	// GetTrustedIssuer reads an issuer by name; ErrNotFound when there is none.
	GetTrustedIssuer(ctx context.Context, name string) (TrustedIssuer, error)
	// ListTrustedIssuers pages through issuers ordered by name.
	ListTrustedIssuers(ctx context.Context, p Page) (issuers []TrustedIssuer, nextCursor string, err error)
	// DeleteTrustedIssuer removes an issuer; ErrNotFound when there is none.
	DeleteTrustedIssuer(ctx context.Context, name string) error
}

// OAuthServer is an outbound authorization server flows get tokens from.
type OAuthServer struct {
	// Name is the key flows refer to.
	Name                  string
	MetadataURL           string
	AuthorizationEndpoint string
	TokenEndpoint         string
	RefreshEndpoint       string
	RevocationEndpoint    string
	ClientID              string
	// ClientSecret is plain text in memory only: the store seals it with
	// Options.Sealer, bound to Name, before it reaches the database.
	// Empty means none.
	ClientSecret string
	// ClientAuth is client_secret_basic, client_secret_post or
	// private_key_jwt.
	ClientAuth     string
	PrivateKeyFile string
	KeyID          string
	Scopes         []string
	// Params are extra authorize/token parameters; nil when empty.
	Params      map[string]string
	UsePrompt   bool
	UsePKCE     bool
	RedirectURI string
	// DPoP makes Flowgate send DPoP proofs (RFC 9449) to this server,
	// made with the server's key (DPoPKey).
	DPoP      bool
	Source    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// OAuthServers stores outbound authorization servers.
type OAuthServers interface {
	// DPoPKey returns the DPoP private key (PKCS #8 DER) of a server,
	// storing the one generate makes when the server has none yet; of
	// servers asking at once, all get the one stored first. The store
	// seals it. ErrNotFound when the server does not exist.
	DPoPKey(ctx context.Context, server string, generate func() ([]byte, error)) ([]byte, error)
	// CreateOAuthServer adds a server; ErrConflict when the name is taken.
	CreateOAuthServer(ctx context.Context, s OAuthServer) error
	// UpdateOAuthServer replaces every field but CreatedAt, the client
	// secret included; ErrNotFound when there is none.
	UpdateOAuthServer(ctx context.Context, s OAuthServer) error
	// GetOAuthServer reads a server by name, its secret opened;
	// ErrNotFound when there is none.
	GetOAuthServer(ctx context.Context, name string) (OAuthServer, error)
	// ListOAuthServers pages through servers ordered by name, secrets
	// opened.
	ListOAuthServers(ctx context.Context, p Page) (servers []OAuthServer, nextCursor string, err error)
	// DeleteOAuthServer removes a server; ErrNotFound when there is none.
	DeleteOAuthServer(ctx context.Context, name string) error
}

// SettingValues is a small key/value table of server-wide switches (such
// as the API switches "api.workflow"). Values are not secret and are
// stored in plain text; secrets belong in Secrets.
type SettingValues interface {
	// PutSetting creates or replaces a named value.
	PutSetting(ctx context.Context, name, value string) error
	// GetSetting reads a named value; ErrNotFound when there is none.
	GetSetting(ctx context.Context, name string) (string, error)
	// ListSettings reads every value whose name starts with prefix.
	ListSettings(ctx context.Context, prefix string) (map[string]string, error)
}
