// Package connectors is Flowgate's outbound OAuth client: how flows get
// tokens from other systems' authorization servers (docs/configuration.md
// oauth_servers, §5 oauth_* steps). A Client serves one store.OAuthServer:
// endpoints from discovery or configuration, client authentication by
// client_secret_basic, client_secret_post or private_key_jwt (RFC 7523),
// client credentials, the authorization code flow with PKCE, refresh that
// reports a rotated refresh token, and revocation (RFC 7009).
//
// Token requests go through golang.org/x/oauth2, which parses responses
// and errors. What oauth2 cannot do per request — a fresh private_key_jwt
// assertion and the server's extra params on a refresh — a RoundTripper
// adds to the token requests this Client's HTTP client sends (see
// tokenTransport).
//
// Nothing here stores tokens; package vault does.
package connectors

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/flowgate/flowgate/internal/dpop"
	"github.com/flowgate/flowgate/internal/egress"
	"github.com/flowgate/flowgate/internal/store"
)

// Client authentication methods (store.OAuthServer.ClientAuth).
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthPrivateKeyJWT     = "private_key_jwt"
)

// DefaultLifetime is what a token answered without expires_in is taken to
// last. "Never expires" would keep a dead token forever; an hour is the
// most common real lifetime, and a token that dies sooner is refreshed on
// its first 401.
const DefaultLifetime = time.Hour

// discoveryTTL is how long discovered metadata is trusted. Providers
// rarely move endpoints; an hour bounds how long a move goes unnoticed.
const discoveryTTL = time.Hour

// assertionLifetime is the private_key_jwt assertion's lifetime: RFC 7523
// wants it short, and every request makes a fresh one anyway.
const assertionLifetime = 2 * time.Minute

// ErrNoRevocationEndpoint is returned by Revoke when the server has no
// revocation endpoint, configured or discovered.
var ErrNoRevocationEndpoint = errors.New("no revocation endpoint")

// Options are what New needs besides the server entry.
type Options struct {
	// HTTPClient sends every request to the provider; nil means a client
	// with a 30 s timeout under egress.Default(). Its Transport is
	// wrapped, not modified.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// DPoPKey is the server's DPoP key (PKCS #8, dpop.NewKey), required
	// when the server entry has dpop (see LoadDPoPKey).
	DPoPKey []byte
	// Logger records what a token answer had that was dropped (never a
	// token); nil means slog.Default().
	Logger *slog.Logger
}

// Token is what a provider issued. It has no JSON tags: tokens are
// secrets, and a Token must never be serialised by accident.
type Token struct {
	AccessToken string
	// TokenType is what the provider said, always bearer (any case).
	TokenType    string
	RefreshToken string
	// Expiry is when AccessToken expires: from expires_in, or
	// DefaultLifetime when the provider sent none.
	Expiry time.Time
	// ExpiresIn is Expiry as seconds from when the token was received,
	// the step output expires_in.
	ExpiresIn int64
	// Scopes are the granted scopes: the response's scope, else (RFC
	// 6749 §5.1) the scopes requested; nil when neither is known (a
	// refresh without scope: unchanged).
	Scopes []string
	// IDToken is the OpenID ID token of a code exchange, "" when the
	// provider sent none; its caller verifies it (internal/federation).
	IDToken string
	// InstanceURL is where the API of the account that signed in lives,
	// when the token answer says so in instance_url (Salesforce: the
	// org's API base, e.g. https://acme.my.salesforce.com), without a
	// trailing slash; "" when the answer has none or it is not a plain
	// https URL. Not a secret: flows get it as a step output.
	InstanceURL string
	// Rotated reports, for Refresh, that the provider issued a new
	// refresh token, which replaces the old one; when false RefreshToken
	// is the one presented, still valid.
	Rotated bool
}

// Endpoints are a server's URLs after discovery and configuration.
type Endpoints struct {
	Authorization string
	Token         string
	Refresh       string
	Revocation    string
}

// Client is an OAuth client for one OAuth server. It is safe for
// concurrent use. Build a new one when the server entry changes.
type Client struct {
	srv  store.OAuthServer
	now  func() time.Time
	log  *slog.Logger
	hc   *http.Client // wraps Options.HTTPClient with tokenTransport
	base *http.Client // Options.HTTPClient as given, for discovery and revocation
	key  *signingKey  // private_key_jwt only
	// dpop makes the proofs of a server with dpop; nil otherwise.
	dpop *dpop.Prover

	// discovery is a lock (a one-slot channel, so a caller can stop
	// waiting when its context ends) over the cached metadata, held while
	// it is fetched: one fetch at a time, the others then read its result.
	discovery  chan struct{}
	discovered Endpoints
	fetchedAt  time.Time
}

// New builds a Client. It checks the entry and, for private_key_jwt,
// reads the key file now, so a bad key is reported when the server is
// configured rather than at a step's first token request.
func New(srv store.OAuthServer, opts Options) (*Client, error) {
	c := &Client{srv: srv, now: opts.Now, log: opts.Logger, base: opts.HTTPClient, discovery: make(chan struct{}, 1)}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.base == nil {
		c.base = egress.Default().Client(30 * time.Second)
	}
	cfgErr := func(format string, args ...any) error {
		return &Error{Kind: KindConfig, Server: srv.Name, Op: "configure", Err: fmt.Errorf(format, args...)}
	}
	if srv.ClientID == "" {
		return nil, cfgErr("client_id is required")
	}
	if srv.MetadataURL == "" && srv.TokenEndpoint == "" {
		return nil, cfgErr("metadata_url or token_endpoint is required")
	}
	switch srv.ClientAuth {
	case "", AuthClientSecretBasic, AuthClientSecretPost:
	case AuthPrivateKeyJWT:
		if srv.PrivateKeyFile == "" {
			return nil, cfgErr("private_key_jwt needs private_key_file")
		}
		k, err := loadSigningKey(srv.PrivateKeyFile, srv.KeyID)
		if err != nil {
			return nil, cfgErr("%w", err)
		}
		c.key = k
	default:
		return nil, cfgErr("client_auth %q is not %s, %s or %s", srv.ClientAuth, AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT)
	}
	if srv.DPoP {
		if len(opts.DPoPKey) == 0 {
			return nil, cfgErr("dpop needs the server's DPoP key")
		}
		p, err := dpop.NewProver(opts.DPoPKey, c.now)
		if err != nil {
			return nil, cfgErr("%w", err)
		}
		c.dpop = p
	}
	base := c.base.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.hc = &http.Client{
		Transport:     &tokenTransport{c: c, base: base},
		CheckRedirect: c.base.CheckRedirect,
		Jar:           c.base.Jar,
		Timeout:       c.base.Timeout,
	}
	return c, nil
}

// Server is the entry this Client was built from.
func (c *Client) Server() store.OAuthServer { return c.srv }

// authMethod is the configured method, client_secret_basic by default.
func (c *Client) authMethod() string {
	if c.srv.ClientAuth == "" {
		return AuthClientSecretBasic
	}
	return c.srv.ClientAuth
}

// Endpoints resolves the server's URLs: explicitly configured ones win
// over discovered ones, refresh defaults to the token endpoint. Discovery
// is cached for an hour; a failed discovery is not cached, so the next
// call tries again.
func (c *Client) Endpoints(ctx context.Context) (Endpoints, error) {
	var d Endpoints
	if c.srv.MetadataURL != "" {
		var err error
		if d, err = c.discover(ctx); err != nil {
			return Endpoints{}, err
		}
	}
	e := Endpoints{
		Authorization: firstOf(c.srv.AuthorizationEndpoint, d.Authorization),
		Token:         firstOf(c.srv.TokenEndpoint, d.Token),
		Revocation:    firstOf(c.srv.RevocationEndpoint, d.Revocation),
	}
	e.Refresh = firstOf(c.srv.RefreshEndpoint, e.Token)
	if e.Token == "" {
		return Endpoints{}, &Error{Kind: KindConfig, Server: c.srv.Name, Op: "discovery", Err: errors.New("no token endpoint")}
	}
	return e, nil
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (c *Client) discover(ctx context.Context) (Endpoints, error) {
	select {
	case c.discovery <- struct{}{}:
	case <-ctx.Done():
		return Endpoints{}, c.classify("discovery", ctx.Err())
	}
	defer func() { <-c.discovery }()
	if !c.fetchedAt.IsZero() && c.now().Sub(c.fetchedAt) < discoveryTTL {
		return c.discovered, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.srv.MetadataURL, nil)
	if err != nil {
		return Endpoints{}, &Error{Kind: KindConfig, Server: c.srv.Name, Op: "discovery", Err: err}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.base.Do(req)
	if err != nil {
		return Endpoints{}, c.classify("discovery", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		kind := KindOther
		if resp.StatusCode >= 500 {
			kind = KindUnreachable
		}
		return Endpoints{}, &Error{Kind: kind, Server: c.srv.Name, Op: "discovery", Err: fmt.Errorf("%s answered HTTP %d", c.srv.MetadataURL, resp.StatusCode)}
	}
	var m struct {
		Authorization string `json:"authorization_endpoint"`
		Token         string `json:"token_endpoint"`
		Revocation    string `json:"revocation_endpoint"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&m); err != nil {
		return Endpoints{}, &Error{Kind: KindOther, Server: c.srv.Name, Op: "discovery", Err: fmt.Errorf("metadata: %w", err)}
	}
	c.discovered = Endpoints{Authorization: m.Authorization, Token: m.Token, Revocation: m.Revocation}
	c.fetchedAt = c.now()
	return c.discovered, nil
}

// config is the oauth2.Config for the code flow and refresh; tokenURL is
// the token or the refresh endpoint.
func (c *Client) config(e Endpoints, tokenURL string, scopes []string) *oauth2.Config {
	style := oauth2.AuthStyleInHeader
	secret := c.srv.ClientSecret
	switch c.authMethod() {
	case AuthClientSecretPost:
		style = oauth2.AuthStyleInParams
	case AuthPrivateKeyJWT:
		// client_id in the body and no secret; tokenTransport adds the
		// assertion.
		style, secret = oauth2.AuthStyleInParams, ""
	}
	return &oauth2.Config{
		ClientID:     c.srv.ClientID,
		ClientSecret: secret,
		Endpoint:     oauth2.Endpoint{AuthURL: e.Authorization, TokenURL: tokenURL, AuthStyle: style},
		RedirectURL:  c.srv.RedirectURI,
		Scopes:       scopes,
	}
}

func (c *Client) httpCtx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c.hc)
}

// scopesOr returns the call's scopes, or the server's default ones when
// the call names none.
func (c *Client) scopesOr(scopes []string) []string {
	if len(scopes) > 0 {
		return scopes
	}
	return c.srv.Scopes
}

// DPoP is the proof maker of a server with dpop, nil for others: http
// steps that send this server's tokens make their proofs with it.
func (c *Client) DPoP() *dpop.Prover { return c.dpop }

// DPoPKeys is where servers' DPoP keys are kept (store.OAuthServers).
type DPoPKeys interface {
	DPoPKey(ctx context.Context, server string, generate func() ([]byte, error)) ([]byte, error)
}

// LoadDPoPKey returns a server's DPoP key for Options.DPoPKey, made and
// stored (sealed) on first use, shared by every Flowgate server.
func LoadDPoPKey(ctx context.Context, keys DPoPKeys, server string) ([]byte, error) {
	k, err := keys.DPoPKey(ctx, server, dpop.NewKey)
	if err != nil {
		return nil, &Error{Kind: KindConfig, Server: server, Op: "configure", Err: err}
	}
	return k, nil
}

// ClientCredentials gets a token for the client itself (oauth_server_login).
// scopes override the server's default scopes when not empty.
func (c *Client) ClientCredentials(ctx context.Context, scopes []string) (Token, error) {
	e, err := c.Endpoints(ctx)
	if err != nil {
		return Token{}, err
	}
	cfg := c.config(e, e.Token, c.scopesOr(scopes))
	cc := clientcredentials.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		TokenURL:     e.Token,
		Scopes:       cfg.Scopes,
		AuthStyle:    cfg.Endpoint.AuthStyle,
	}
	t, err := cc.Token(c.httpCtx(ctx))
	if err != nil {
		return Token{}, c.classify("client_credentials", err)
	}
	return c.convert("client_credentials", t, cfg.Scopes)
}

// AuthRequest is what AuthCodeURL puts in the authorization request.
type AuthRequest struct {
	// State binds the answer to the request; required.
	State string
	// PKCEVerifier, when set, adds its S256 challenge (see NewVerifier);
	// the same verifier goes to Exchange.
	PKCEVerifier string
	// Scopes override the server's default scopes when not empty.
	Scopes []string
	// UsePrompt overrides the server's use_prompt when not nil: true asks
	// for prompt=consent.
	UsePrompt *bool
	// Params are added after the server's params, overriding them.
	Params map[string]string
}

// NewVerifier makes a PKCE code verifier (RFC 7636, 32 random bytes).
func NewVerifier() string { return oauth2.GenerateVerifier() }

// AuthCodeURL is where the user's browser goes to log in at the provider.
func (c *Client) AuthCodeURL(ctx context.Context, r AuthRequest) (string, error) {
	if r.State == "" {
		return "", errors.New("connectors: AuthCodeURL needs a state")
	}
	e, err := c.Endpoints(ctx)
	if err != nil {
		return "", err
	}
	if e.Authorization == "" {
		return "", &Error{Kind: KindConfig, Server: c.srv.Name, Op: "authorize", Err: errors.New("no authorization endpoint")}
	}
	var opts []oauth2.AuthCodeOption
	if r.PKCEVerifier != "" {
		opts = append(opts, oauth2.S256ChallengeOption(r.PKCEVerifier))
	}
	prompt := c.srv.UsePrompt
	if r.UsePrompt != nil {
		prompt = *r.UsePrompt
	}
	if prompt {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "consent"))
	}
	for k, v := range c.srv.Params {
		if _, over := r.Params[k]; !over {
			opts = append(opts, oauth2.SetAuthURLParam(k, v))
		}
	}
	for k, v := range r.Params {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	return c.config(e, e.Token, c.scopesOr(r.Scopes)).AuthCodeURL(r.State, opts...), nil
}

// CallbackError is the error an authorization response (the query of the
// redirect back to Flowgate) carries, nil when it has none: KindAccessDenied
// for access_denied (the user declined, oauth_user_login -2),
// KindUnreachable for temporarily_unavailable and server_error (-3),
// KindOther for the rest. Only the provider's code and description are
// kept.
func (c *Client) CallbackError(query url.Values) error {
	code := query.Get("error")
	if code == "" {
		return nil
	}
	e := &Error{Kind: KindOther, Server: c.srv.Name, Op: "authorize", Code: code, Description: query.Get("error_description")}
	switch code {
	case "access_denied":
		e.Kind = KindAccessDenied
	case "temporarily_unavailable", "server_error":
		e.Kind = KindUnreachable
	case "invalid_scope":
		e.Kind = KindInvalidScope
	}
	return e
}

// Exchange trades an authorization code for tokens. verifier is the PKCE
// verifier given to AuthCodeURL, or empty; scopes are those requested
// (nil: the server's), reported as granted when the provider does not say.
func (c *Client) Exchange(ctx context.Context, code, verifier string, scopes []string) (Token, error) {
	e, err := c.Endpoints(ctx)
	if err != nil {
		return Token{}, err
	}
	var opts []oauth2.AuthCodeOption
	if verifier != "" {
		opts = append(opts, oauth2.VerifierOption(verifier))
	}
	cfg := c.config(e, e.Token, c.scopesOr(scopes))
	t, err := cfg.Exchange(c.httpCtx(ctx), code, opts...)
	if err != nil {
		return Token{}, c.classify("exchange", err)
	}
	return c.convert("exchange", t, cfg.Scopes)
}

// Refresh uses a refresh token at the refresh endpoint. The result's
// RefreshToken is the provider's new one when it rotated (Rotated true),
// else the one given: callers must store it before using the access token,
// or a rotation is lost. Scopes are nil when the provider did not say
// (they did not change).
func (c *Client) Refresh(ctx context.Context, refreshToken string) (Token, error) {
	if refreshToken == "" {
		return Token{}, &Error{Kind: KindInvalidGrant, Server: c.srv.Name, Op: "refresh", Err: errors.New("no refresh token")}
	}
	e, err := c.Endpoints(ctx)
	if err != nil {
		return Token{}, err
	}
	// Config.TokenSource on a token without access token refreshes at
	// once; oauth2 fills in the presented refresh token when the response
	// has none, so a different one means a rotation.
	src := c.config(e, e.Refresh, nil).TokenSource(c.httpCtx(ctx), &oauth2.Token{RefreshToken: refreshToken})
	t, err := src.Token()
	if err != nil {
		return Token{}, c.classify("refresh", err)
	}
	tok, err := c.convert("refresh", t, nil)
	if err != nil {
		return Token{}, err
	}
	if tok.RefreshToken == "" {
		tok.RefreshToken = refreshToken
	}
	tok.Rotated = tok.RefreshToken != refreshToken
	return tok, nil
}

// convert checks the token type and fills in expiry and scopes.
func (c *Client) convert(op string, t *oauth2.Token, requested []string) (Token, error) {
	// An empty token_type is taken as bearer, as oauth2 does: RFC 6749
	// requires the field, but rejecting a usable token over it helps no
	// one. DPoP is taken when this Client makes proofs; anything else
	// (MAC…) needs proof we cannot give.
	dpopOK := c.dpop != nil && strings.EqualFold(t.TokenType, "DPoP")
	if t.TokenType != "" && !strings.EqualFold(t.TokenType, "bearer") && !dpopOK {
		return Token{}, &Error{Kind: KindUnsupportedTokenType, Server: c.srv.Name, Op: op,
			Err: fmt.Errorf("token type %q is not bearer", t.TokenType)}
	}
	now := c.now()
	tok := Token{AccessToken: t.AccessToken, TokenType: t.TokenType, RefreshToken: t.RefreshToken}
	tok.IDToken, _ = t.Extra("id_token").(string)
	tok.InstanceURL = c.instanceURL(op, t)
	if tok.TokenType == "" {
		tok.TokenType = "Bearer"
	}
	// oauth2 turns expires_in into Expiry with its own time.Now; this
	// Client's clock decides instead, so that a caller on Options.Now (the
	// vault, with the same clock) agrees on when the token expires.
	if secs, ok := expiresIn(t); ok {
		tok.Expiry = now.Add(time.Duration(secs) * time.Second)
	} else if !t.Expiry.IsZero() {
		tok.Expiry = now.Add(time.Until(t.Expiry))
	} else {
		tok.Expiry = now.Add(DefaultLifetime)
	}
	tok.ExpiresIn = max(0, int64(tok.Expiry.Sub(now).Round(time.Second)/time.Second))
	if s, ok := t.Extra("scope").(string); ok {
		tok.Scopes = strings.Fields(s)
	} else if len(requested) > 0 {
		tok.Scopes = append([]string(nil), requested...)
	}
	return tok, nil
}

// instanceURL is the answer's instance_url when it is an https URL with
// a host and nothing but a path, trailing slash removed, so that a flow
// can append "/services/data/…" to it. Anything else is dropped and
// logged without its value: flows would send the user's access token to
// that URL, so a provider (or whoever answers in its place) must not steer
// it to plain http, to credentials in the URL, or to a query string.
func (c *Client) instanceURL(op string, t *oauth2.Token) string {
	raw := t.Extra("instance_url")
	if raw == nil {
		return ""
	}
	s, _ := raw.(string)
	u, err := url.Parse(s)
	var why string
	switch {
	case s == "":
		why = "not a non-empty string"
	case err != nil:
		why = "not a URL"
	case u.Scheme != "https":
		why = "not https"
	case u.Host == "" || u.Hostname() == "":
		why = "no host"
	case u.User != nil, u.RawQuery != "", u.ForceQuery, u.Fragment != "", strings.HasSuffix(s, "#"):
		why = "has user info, a query or a fragment"
	}
	if why != "" {
		c.log.Warn("oauth token answer: instance_url dropped", "server", c.srv.Name, "op", op, "reason", why)
		return ""
	}
	return strings.TrimRight(s, "/")
}

// expiresIn is the response's expires_in in seconds. oauth2 sets
// Token.ExpiresIn for some grants only (not client credentials), so the
// raw response is read as well: a JSON number or string, or a form value.
func expiresIn(t *oauth2.Token) (int64, bool) {
	if t.ExpiresIn > 0 {
		return t.ExpiresIn, true
	}
	var n int64
	switch v := t.Extra("expires_in").(type) {
	case float64:
		n = int64(v)
	case string:
		n, _ = strconv.ParseInt(v, 10, 64)
	}
	// oauth2's own bound: an absurd lifetime must not overflow.
	return min(n, math.MaxInt32), n > 0
}

// Revoke revokes a token at the provider (RFC 7009). hint is
// "refresh_token", "access_token" or empty. Revoking a refresh token
// usually ends the whole grant. ErrNoRevocationEndpoint when the server
// has none. oauth2 has no revocation, so the request is built here, with
// the same client authentication as token requests.
func (c *Client) Revoke(ctx context.Context, token, hint string) error {
	e, err := c.Endpoints(ctx)
	if err != nil {
		return err
	}
	if e.Revocation == "" {
		return ErrNoRevocationEndpoint
	}
	form := url.Values{"token": {token}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.Revocation, nil)
	if err != nil {
		return &Error{Kind: KindConfig, Server: c.srv.Name, Op: "revoke", Err: err}
	}
	switch c.authMethod() {
	case AuthClientSecretBasic:
		req.SetBasicAuth(url.QueryEscape(c.srv.ClientID), url.QueryEscape(c.srv.ClientSecret))
	case AuthClientSecretPost:
		form.Set("client_id", c.srv.ClientID)
		form.Set("client_secret", c.srv.ClientSecret)
	case AuthPrivateKeyJWT:
		if err := c.addAssertion(form, e.Token); err != nil {
			return &Error{Kind: KindConfig, Server: c.srv.Name, Op: "revoke", Err: err}
		}
	}
	setForm(req, form)
	resp, err := c.base.Do(req)
	if err != nil {
		return c.classify("revoke", err)
	}
	defer resp.Body.Close()
	// RFC 7009 says 200, but some providers answer 204 No Content; any
	// success is one.
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return nil
	}
	re := &oauth2.RetrieveError{Response: resp}
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct == "application/json" {
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body) == nil {
			re.ErrorCode, re.ErrorDescription = body.Error, body.Description
		}
	}
	return c.classify("revoke", re)
}

func setForm(req *http.Request, form url.Values) {
	body := form.Encode()
	req.Body = io.NopCloser(strings.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
}

// randomID is a 128-bit random identifier (the assertion's jti).
func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}
