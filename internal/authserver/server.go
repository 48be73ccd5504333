// Package authserver is Flowgate's built-in OAuth 2.0 authorization server
// and OpenID Provider: discovery, JWKS, the authorization code
// flow with PKCE, client credentials, refresh-token rotation, revocation,
// introspection, userinfo, RP-initiated logout, and the login, consent and
// logout pages.
//
// The protocol layer is github.com/zitadel/oidc/v3's pkg/op. provider
// implements op.Server and is served by op.RegisterServer on Flowgate's paths:
// op routes the endpoints, parses and decodes every request, authenticates
// clients through provider.VerifyClient, checks that a client may use a
// grant type, dispatches grants to CodeExchange, RefreshToken and
// ClientCredentialsExchange, runs its authorization-request checks
// (redirect URI, prompt, code_challenge_method) and writes OAuth errors.
// Device authorization, token exchange and the JWT-profile grant come
// from op.UnimplementedServer and are refused.
//
// Where op's defaults are laxer or differ from what Flowgate promises its
// clients (docs/security.md), the provider methods apply ours:
// client authentication is ours (a keyed hash of the secret in constant
// time, the registered method enforced, private_key_jwt assertions
// verified with go-jose with aud, exp and a single-use jti; public
// clients only with PKCE); PKCE plain, which op accepts, is refused at
// the authorize endpoint with invalid_request; refresh tokens rotate on
// every use and a reused one revokes its family; a reused code revokes
// what it issued; access tokens are RFC 9068 at+jwt, signed with the
// access-token key (ES256, RS256 or EdDSA) and ID tokens with RS256, both
// by this package with golang-jwt (op has one signing key). An unknown client or an
// unregistered redirect URI gets our HTML error page, never a redirect.
//
// op has no user interface and no sessions: /login, /consent and /logout
// are our own handlers, and serveOp, the handler in front of op, passes
// each call's HTTP request and response to the provider in the context
// (an exchange) for session cookies, audit addresses, and the HTML pages
// that answer instead of op's JSON. serveOp also enforces what op leaves
// open: the form content type and body limit, body-only parameters on
// the client-authenticated endpoints, invalid_client (audited) for a
// request naming no client, WWW-Authenticate challenges and no-store
// headers; methods are enforced by the ServeMux patterns (405 otherwise).
// op's decoder and encoder are adjusted so that parameter names match only
// as spelled (the requests of the client-authenticated endpoints are filled
// without reflection, by the same rules), a malformed max_age still reaches
// Authorize (refused at the redirect URI), and op's own error redirects
// carry iss like ours.
//
// Hot paths: client_credentials with a client secret does one client read,
// an HMAC check, one signature and an audit record (batched by the
// Auditor); introspection does one signature check with in-memory keys and
// one primary-key lookup in the revocation deny-list (two for a user's
// token: its jti and its refresh family). Nothing else writes.
package authserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/credential"
	"github.com/flowgate/flowgate/internal/dpop"
	"github.com/flowgate/flowgate/internal/egress"
	"github.com/flowgate/flowgate/internal/federation"
	"github.com/flowgate/flowgate/internal/keyring"
	"github.com/flowgate/flowgate/internal/metrics"
	"github.com/flowgate/flowgate/internal/mfa"
	"github.com/flowgate/flowgate/internal/pagestyle"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/throttle"
)

// The paths of the endpoints, fixed: clients find them in discovery.
const (
	PathDiscovery    = "/.well-known/openid-configuration"
	PathASMetadata   = "/.well-known/oauth-authorization-server"
	PathJWKS         = "/oauth2/jwks"
	PathAuthorize    = "/oauth2/authorize"
	PathToken        = "/oauth2/token"
	PathRevoke       = "/oauth2/revoke"
	PathIntrospect   = "/oauth2/introspect"
	PathUserinfo     = "/oauth2/userinfo"
	PathEndSession   = "/oauth2/logout"
	PathLogin        = "/login"
	PathConsent      = "/consent"
	PathLogout       = "/logout"
	sessionCookie    = "flowgate_session"
	csrfCookie       = "flowgate_csrf"
	maxBodyBytes     = 64 << 10
	codeTTL          = 60 * time.Second
	authRequestTTL   = 10 * time.Minute
	assertionMaxLife = 5 * time.Minute
)

// Auditor records audit events; internal/audit's Writer satisfies it.
// Record must not block for long: it is called on the token endpoint.
type Auditor interface {
	Record(ctx context.Context, e store.AuditEvent)
	// Healthy reports whether recorded events are being written. While it
	// fails, sign-ins and token requests are refused: nothing is granted
	// that the audit log would not show.
	Healthy() error
}

// Options configure New.
type Options struct {
	// Issuer is the public URL, without a trailing slash.
	Issuer string
	Store  Store
	Ring   *keyring.Ring
	// Hasher checks passwords; nil makes one with the default parameters.
	Hasher *credential.Hasher
	Auth   config.Auth
	Logger *slog.Logger
	// Auditor receives audit events when Auth.AuditLog is on; nil records
	// nothing.
	Auditor Auditor
	// HTTPClient fetches clients' jwks_uri; nil uses a 10 s timeout client
	// under egress.Default().
	HTTPClient *http.Client
	// Federation signs people in through upstream identity providers;
	// nil when none is configured.
	Federation *federation.Service
	// Metrics counts issued tokens by grant; nil counts nothing.
	Metrics *metrics.Metrics
	// MFA is the second factor; nil makes one from Store, Ring, Auth.MFA
	// and Auditor.
	MFA *mfa.Service
}

// Server is the authorization server. It is safe for concurrent use.
type Server struct {
	opts     Options
	st       Store
	keys     *Keys
	hasher   *credential.Hasher
	logger   *slog.Logger
	issuer   string
	tokenURL string
	secure   bool
	pages    *pages
	limits   *throttle.Throttle
	clients  *clientCache
	revoked  *revocations
	remote   *remoteJWKS
	dpop     *dpop.Verifier
	origins  *origins
	mfa      *mfa.Service
	now      func() time.Time
	// handler is op's, serving provider.
	handler http.Handler
}

// New builds the server, creating signing keys on first start, and keeps
// the keys fresh until ctx ends.
func New(ctx context.Context, o Options) (*Server, error) {
	if o.Issuer == "" || o.Store == nil || o.Ring == nil {
		return nil, errors.New("authserver: issuer, store and key ring are required")
	}
	o.Issuer = strings.TrimSuffix(o.Issuer, "/")
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	a := &o.Auth
	if a.AccessTokenTTL <= 0 {
		a.AccessTokenTTL = time.Hour
	}
	if a.IDTokenTTL <= 0 {
		a.IDTokenTTL = time.Hour
	}
	if a.RefreshTokenTTL <= 0 {
		a.RefreshTokenTTL = 720 * time.Hour
	}
	if a.Session.IdleTimeout <= 0 {
		a.Session.IdleTimeout = 20 * time.Minute
	}
	if o.Hasher == nil {
		h, err := credential.NewHasher(credential.DefaultArgon2())
		if err != nil {
			return nil, fmt.Errorf("authserver: %w", err)
		}
		o.Hasher = h
	}
	if o.HTTPClient == nil {
		o.HTTPClient = egress.Default().Client(10 * time.Second)
	}
	keys, err := NewKeys(ctx, o.Store, a.SigningAlg, MaxTokenTTL(*a), o.Logger)
	if err != nil {
		return nil, fmt.Errorf("authserver: %w", err)
	}
	go keys.run(ctx)
	pg, err := newPages()
	if err != nil {
		return nil, fmt.Errorf("authserver: %w", err)
	}
	s := &Server{
		opts: o, st: o.Store, keys: keys, hasher: o.Hasher, logger: o.Logger,
		issuer: o.Issuer, tokenURL: o.Issuer + PathToken,
		secure: strings.HasPrefix(o.Issuer, "https://"),
		pages:  pg, limits: throttle.New(o.Store, throttle.Options{}), clients: newClientCache(o.Store), revoked: newRevocations(o.Store, revocationMemory(o.Store.Backend())), remote: newRemoteJWKS(o.HTTPClient),
		now: time.Now, origins: &origins{st: o.Store},
	}
	s.mfa = o.MFA
	if s.mfa == nil {
		var rec audit.Recorder
		if o.Auditor != nil && a.AuditLog {
			rec = o.Auditor
		}
		s.mfa = mfa.New(mfa.Options{Store: o.Store, Ring: o.Ring, Policy: a.MFA, Auditor: rec, Now: func() time.Time { return s.now() }, Origin: o.Issuer})
	}
	s.dpop = &dpop.Verifier{JTIs: o.Store, Now: func() time.Time { return s.now() }}
	if a.DPoPNonce {
		// Every server derives the same nonce key from the key ring, so a
		// nonce from one is good at all.
		s.dpop.Nonces = dpop.NewNonces([]byte(o.Ring.MAC("dpop-nonce-key", nil)), s.dpop.Now)
	}
	// No CORS: the endpoints answer as they always did.
	s.handler = op.RegisterServer(&provider{s: s}, opEndpoints(), op.WithServerCORSOptions(nil), op.WithDecoder(newFormDecoder()), op.WithEncoder(issEncoder{enc: oidc.NewEncoder(), issuer: o.Issuer}))
	return s, nil
}

// MaxTokenTTL is how long a rotated signing key stays published: the
// longest lifetime of a token it may have signed.
func MaxTokenTTL(a config.Auth) time.Duration {
	return max(a.AccessTokenTTL, a.IDTokenTTL, time.Hour)
}

// Keys is the in-memory signing key set; Keys().Keyfunc is what
// resource.OwnIssuer.Keys wants.
func (s *Server) Keys() *Keys { return s.keys }

// Revoked reports whether an access token's jti is deny-listed, by itself
// or through its refresh family, for resource.OwnIssuer.Revoked: the check
// on every API request. A revocation made on this server is seen on the next
// request; one made on another server sharing the database, within
// revocationTTL (a second), since a token found not revoked is not read again
// for that long. Introspection and userinfo read the deny-list every time.
func (s *Server) Revoked(ctx context.Context, jti string) (bool, error) {
	now := s.now()
	revoked, err := s.revoked.revoked(ctx, jti, now)
	if err != nil || revoked {
		return revoked, err
	}
	if family, _, ok := strings.Cut(jti, "."); ok && family != "" {
		return s.revoked.revoked(ctx, familyDenyPrefix+family, now)
	}
	return false, nil
}

// Register mounts every endpoint of the provider on mux: the protocol
// endpoints through op's handler, the pages for people directly.
func (s *Server) Register(mux *http.ServeMux) {
	h := http.HandlerFunc(s.serveOp)
	for _, p := range []string{
		"GET " + PathDiscovery, "GET " + PathASMetadata, "GET " + PathJWKS,
		"GET " + PathAuthorize, "POST " + PathAuthorize,
		"POST " + PathToken, "POST " + PathRevoke, "POST " + PathIntrospect,
		"GET " + PathUserinfo, "POST " + PathUserinfo,
		"GET " + PathEndSession, "POST " + PathEndSession,
	} {
		mux.Handle(p, h)
	}
	mux.HandleFunc("GET "+PathLogin, s.loginPage)
	mux.HandleFunc("POST "+PathLogin, s.loginSubmit)
	mux.HandleFunc("GET "+PathLoginWith, s.loginWith)
	mux.HandleFunc("GET "+PathLoginCallback, s.loginCallback)
	mux.HandleFunc("GET "+PathLoginMFA, s.mfaPage)
	mux.HandleFunc("POST "+PathLoginMFA, s.mfaSubmit)
	mux.HandleFunc("GET "+PathLoginMFAQR, s.mfaQR)
	mux.HandleFunc("POST "+PathLoginMFAContinue, s.mfaContinue)
	mux.HandleFunc("POST "+PathLoginMFAPasskey, s.mfaPasskeySubmit)
	mux.HandleFunc("POST "+PathLoginPasskey, s.loginPasskey)
	mux.HandleFunc("GET "+PathConsent, s.consentPage)
	mux.HandleFunc("POST "+PathConsent, s.consentSubmit)
	mux.HandleFunc("GET "+PathLogout, s.logoutPage)
	mux.HandleFunc("POST "+PathLogout, s.logoutSubmit)
	// The provider's pages are the ones every user sees first, so the
	// stylesheet they share with the work portal is served with them.
	mux.HandleFunc("GET "+pagestyle.Path, pagestyle.Serve)
	mux.HandleFunc("GET "+PathFormPostScript, serveFormPostScript)
	mux.HandleFunc("GET "+PathPasskeyScript, servePasskeyScript)
}

// Metadata is the discovery document (OpenID Connect Discovery 1.0 and
// RFC 8414 share it).
type Metadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	EndSessionEndpoint                string   `json:"end_session_endpoint"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	RevocationAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	PromptValuesSupported             []string `json:"prompt_values_supported"`
	AuthorizationResponseIssParameter bool     `json:"authorization_response_iss_parameter_supported"`
	DPoPSigningAlgValuesSupported     []string `json:"dpop_signing_alg_values_supported"`
	// ACRValuesSupported is ["mfa"] while a second factor is offered.
	ACRValuesSupported []string `json:"acr_values_supported,omitempty"`
}

func (s *Server) metadata() Metadata {
	authMethods := []string{string(oidc.AuthMethodBasic), string(oidc.AuthMethodPost), string(oidc.AuthMethodPrivateKeyJWT), string(oidc.AuthMethodNone)}
	var acr []string
	if s.mfa.Offered() {
		acr = []string{mfa.ACRMFA}
	}
	return Metadata{
		Issuer:                            s.issuer,
		AuthorizationEndpoint:             s.issuer + PathAuthorize,
		TokenEndpoint:                     s.tokenURL,
		JWKSURI:                           s.issuer + PathJWKS,
		UserinfoEndpoint:                  s.issuer + PathUserinfo,
		RevocationEndpoint:                s.issuer + PathRevoke,
		IntrospectionEndpoint:             s.issuer + PathIntrospect,
		EndSessionEndpoint:                s.issuer + PathEndSession,
		ScopesSupported:                   []string{"openid", "profile", "email", "offline_access"},
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{modeQuery, modeFragment, modeFormPost},
		GrantTypesSupported:               []string{string(oidc.GrantTypeCode), string(oidc.GrantTypeClientCredentials), string(oidc.GrantTypeRefreshToken)},
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  []string{"RS256"},
		TokenEndpointAuthMethodsSupported: authMethods,
		TokenEndpointAuthSigningAlgs:      []string{"RS256", "ES256", "EdDSA", "PS256", "ES384"},
		RevocationAuthMethodsSupported:    authMethods,
		IntrospectionAuthMethodsSupported: authMethods[:3],
		CodeChallengeMethodsSupported:     []string{"S256"},
		ClaimsSupported:                   []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "amr", "azp", "name", "email", "email_verified", "preferred_username"},
		PromptValuesSupported:             []string{"none", "login", "consent"},
		AuthorizationResponseIssParameter: true,
		DPoPSigningAlgValuesSupported:     dpop.AlgNames(),
		ACRValuesSupported:                acr,
	}
}

// audit records e when the audit log is on, filling in the request's
// remote address (without port) and user agent; r nil takes the request
// of the op call in ctx, if any.
func (s *Server) audit(ctx context.Context, r *http.Request, e store.AuditEvent) {
	if s.opts.Auditor == nil || !s.opts.Auth.AuditLog {
		return
	}
	if r == nil {
		r = requestOf(ctx)
	}
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	if r != nil {
		e.RemoteAddr = remoteIP(r)
		e.UserAgent = truncate(r.UserAgent(), 256)
	}
	s.opts.Auditor.Record(ctx, e)
}

// auditUnavailable is why sign-ins and token requests must be refused
// now: the audit log is on and its events are not being written. It costs
// two atomic loads on the token endpoint.
func (s *Server) auditUnavailable() error {
	if s.opts.Auditor == nil || !s.opts.Auth.AuditLog {
		return nil
	}
	return s.opts.Auditor.Healthy()
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// randomToken returns n random bytes, base64url.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashToken is how codes, refresh tokens and session ids are stored.
func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// oauthErr is an OAuth error (RFC 6749 §5.2) as op writes it: e's code,
// description for the caller and the HTTP status to answer with.
func oauthErr(e *oidc.Error, description string, status int) error {
	e.Description = description
	return op.NewStatusError(e, status)
}

func errInvalidRequest(d string) error {
	return oauthErr(oidc.ErrInvalidRequest(), d, http.StatusBadRequest)
}
func errInvalidClient(d string) error {
	return oauthErr(oidc.ErrInvalidClient(), d, http.StatusUnauthorized)
}
func errInvalidGrant(d string) error {
	return oauthErr(oidc.ErrInvalidGrant(), d, http.StatusBadRequest)
}

// writeOAuthError answers a request that op does not see (refused before
// it) as op answers the others, with a Basic challenge on a 401.
func (s *Server) writeOAuthError(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Cache-Control", "no-store")
	op.WriteError(&opWriter{ResponseWriter: w, x: &exchange{challenge: `Basic realm="flowgate"`}}, r, s.opError(err), nil)
}

// parseForm checks the content type and size and parses a POST body.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	if !strings.EqualFold(strings.TrimSpace(ct), "application/x-www-form-urlencoded") {
		return errInvalidRequest("content type must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if err := r.ParseForm(); err != nil {
		return errInvalidRequest("malformed or too large request body")
	}
	return nil
}

// parseBodyForm is parseForm for the endpoints whose parameters are read
// from the body only: r.Form is r.PostForm. A request as clients send it,
// with no query and the form content type without parameters, is read
// without what ParseForm does besides (parse the media type, copy the body's
// parameters and merge the query's); any other goes through parseForm, so
// that each is refused, or not, as by it.
func parseBodyForm(w http.ResponseWriter, r *http.Request) error {
	if r.URL.RawQuery != "" || r.PostForm != nil || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		if err := parseForm(w, r); err != nil {
			return err
		}
		r.Form = r.PostForm
		return nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return errInvalidRequest("malformed or too large request body")
	}
	v, err := url.ParseQuery(string(b))
	if err != nil {
		return errInvalidRequest("malformed or too large request body")
	}
	r.PostForm, r.Form = v, v
	return nil
}
