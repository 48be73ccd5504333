// Package federation makes Flowgate a relying party of upstream OpenID
// providers (the identity_providers of docs/configuration.md): a sign-in
// goes to the provider with the authorization code flow, PKCE (S256), a
// random state and a nonce; the code is exchanged with the provider's
// client authentication (secret or private_key_jwt, through
// internal/connectors and so through the egress policy); the ID token is
// verified by coreos/go-oidc (signature, iss, aud, exp) and its nonce
// compared here. The person is then found or created by the linking
// rules (Resolve) and their roles refreshed.
//
// The state parameter is single use (its hash is taken from the store
// atomically), expires after ten minutes and is bound to the browser that
// started the sign-in through a cookie the caller keeps: a state replayed,
// forged or presented from another browser finds nothing, and nothing is
// created. The HTTP side (the /login buttons, the callback, sessions) is
// internal/authserver's.
package federation

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/egress"
	"github.com/flowgate/flowgate/internal/store"
)

// CallbackPath is where every provider sends the browser back: the
// redirect URI to register at the provider is the public URL + this.
const CallbackPath = "/login/callback"

// stateLifetime bounds how long a person may take at the provider's pages.
const stateLifetime = 10 * time.Minute

// metadataTTL is how long a provider's discovery document is trusted
// before it is read again.
const metadataTTL = time.Hour

// Store is what federation needs from the store.
type Store interface {
	store.Federation
	GetUser(ctx context.Context, username string) (store.User, error)
	UpdateUser(ctx context.Context, u store.User) error
}

// Options configure New.
type Options struct {
	// Providers are the identity_providers entries, defaults applied.
	Providers []config.IdentityProvider
	// PublicURL is Flowgate's public URL: the redirect URI is built on it.
	PublicURL string
	Store     Store
	// HTTPClient reaches the providers; nil means egress.Default().
	HTTPClient *http.Client
	// Auditor records the users and links made; nil records nothing.
	Auditor audit.Recorder
	Logger  *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Service signs people in through the configured providers. It is safe
// for concurrent use.
type Service struct {
	opts      Options
	providers map[string]*provider
	order     []string
	now       func() time.Time
	// base carries the HTTP client for go-oidc's key sets, which refresh
	// keys long after the request that made them has ended.
	base context.Context
}

// provider is one identity provider and what was discovered about it.
type provider struct {
	cfg config.IdentityProvider

	mu        sync.Mutex
	fetchedAt time.Time
	meta      Metadata
	verifier  *oidc.IDTokenVerifier
	client    *connectors.Client
}

// Metadata is the part of a provider's discovery document Flowgate uses.
type Metadata struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	UserinfoEndpoint      string   `json:"userinfo_endpoint"`
	EndSessionEndpoint    string   `json:"end_session_endpoint"`
	IDTokenAlgs           []string `json:"id_token_signing_alg_values_supported"`
}

// New builds the service. ctx bounds the providers' key refreshes.
func New(ctx context.Context, o Options) (*Service, error) {
	if o.Store == nil || o.PublicURL == "" {
		return nil, errors.New("federation: store and public URL are required")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = egress.Default().Client(10 * time.Second)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Service{opts: o, providers: map[string]*provider{}, now: o.Now,
		base: oidc.ClientContext(context.WithoutCancel(ctx), o.HTTPClient)}
	if s.now == nil {
		s.now = time.Now
	}
	for _, c := range o.Providers {
		s.providers[c.Name] = &provider{cfg: c}
		s.order = append(s.order, c.Name)
	}
	return s, nil
}

// RedirectURI is the URI to register at every provider.
func (s *Service) RedirectURI() string {
	return strings.TrimSuffix(s.opts.PublicURL, "/") + CallbackPath
}

// Button is a "Sign in with TITLE" button of the login page.
type Button struct{ Name, Title string }

// Buttons lists the providers in configuration order.
func (s *Service) Buttons() []Button {
	out := make([]Button, 0, len(s.order))
	for _, n := range s.order {
		out = append(out, Button{Name: n, Title: s.providers[n].cfg.Title})
	}
	return out
}

// Provider returns a provider's configuration.
func (s *Service) Provider(name string) (config.IdentityProvider, bool) {
	p, ok := s.providers[name]
	if !ok {
		return config.IdentityProvider{}, false
	}
	return p.cfg, true
}

// ProviderForIssuer returns the provider whose issuer is iss exactly.
func (s *Service) ProviderForIssuer(iss string) (config.IdentityProvider, bool) {
	for _, n := range s.order {
		if c := s.providers[n].cfg; c.Issuer == iss {
			return c, true
		}
	}
	return config.IdentityProvider{}, false
}

// Error is a sign-in that did not work out: which provider, a short code
// for the audit log, a sentence for the person, and the technical detail
// shown only with auth.show_detailed_errors.
type Error struct {
	Provider string // the entry's name; "" when the state named none
	Title    string // the button's title
	Code     string // e.g. invalid_state, access_denied, invalid_id_token
	Reason   string // for people
	Detail   string // internals; never a secret or a token
	Err      error  // the cause, for logs
}

func (e *Error) Error() string {
	s := "federation"
	if e.Provider != "" {
		s += " " + e.Provider
	}
	s += ": " + e.Code
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

func (p *provider) fail(code, reason, detail string, err error) *Error {
	return &Error{Provider: p.cfg.Name, Title: p.cfg.Title, Code: code, Reason: reason, Detail: detail, Err: err}
}

// ready returns the provider's discovered metadata, ID token verifier and
// OAuth client, reading the discovery document when it is older than an
// hour or was never read. A provider that cannot be read now is tried
// again at the next sign-in.
func (s *Service) ready(ctx context.Context, p *provider) (Metadata, *oidc.IDTokenVerifier, *connectors.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil && s.now().Sub(p.fetchedAt) < metadataTTL {
		return p.meta, p.verifier, p.client, nil
	}
	meta, err := s.fetchMetadata(ctx, p.cfg)
	if err != nil {
		return Metadata{}, nil, nil, err
	}
	pc := oidc.ProviderConfig{IssuerURL: meta.Issuer, AuthURL: meta.AuthorizationEndpoint, TokenURL: meta.TokenEndpoint,
		JWKSURL: meta.JWKSURI, UserInfoURL: meta.UserinfoEndpoint, Algorithms: meta.IDTokenAlgs}
	op := pc.NewProvider(s.base)
	verifier := op.Verifier(&oidc.Config{ClientID: p.cfg.ClientID, Now: s.now})
	client, err := connectors.New(store.OAuthServer{
		Name: p.cfg.Name, AuthorizationEndpoint: meta.AuthorizationEndpoint, TokenEndpoint: meta.TokenEndpoint,
		ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, ClientAuth: p.cfg.ClientAuth,
		PrivateKeyFile: p.cfg.PrivateKeyFile, KeyID: p.cfg.KeyID, Scopes: p.cfg.Scopes,
		UsePKCE: true, RedirectURI: s.RedirectURI(),
	}, connectors.Options{HTTPClient: s.opts.HTTPClient, Now: s.now})
	if err != nil {
		return Metadata{}, nil, nil, err
	}
	p.meta, p.verifier, p.client, p.fetchedAt = meta, verifier, client, s.now()
	return meta, verifier, client, nil
}

// fetchMetadata reads a provider's discovery document through the egress
// policy and checks that it speaks for the configured issuer.
func (s *Service) fetchMetadata(ctx context.Context, c config.IdentityProvider) (Metadata, error) {
	var m Metadata
	if err := s.getJSON(ctx, c.MetadataURL, &m); err != nil {
		return Metadata{}, fmt.Errorf("metadata %s: %w", c.MetadataURL, err)
	}
	if m.Issuer != c.Issuer {
		return Metadata{}, fmt.Errorf("metadata %s names issuer %q, not %q", c.MetadataURL, m.Issuer, c.Issuer)
	}
	if m.AuthorizationEndpoint == "" || m.TokenEndpoint == "" || m.JWKSURI == "" {
		return Metadata{}, fmt.Errorf("metadata %s lacks authorization_endpoint, token_endpoint or jwks_uri", c.MetadataURL)
	}
	return m, nil
}

func (s *Service) getJSON(ctx context.Context, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return nil
}

// Target is where a sign-in goes on to once it worked: a pending
// authorization request of the OpenID provider, or a path on this server.
type Target struct{ Request, ReturnTo string }

// Begin starts a sign-in at provider name for the browser whose binding
// cookie is browser, and returns the provider's authorization URL.
func (s *Service) Begin(ctx context.Context, name, browser string, t Target) (string, error) {
	p, ok := s.providers[name]
	if !ok {
		return "", &Error{Provider: name, Title: name, Code: "unknown_provider", Reason: "There is no such sign-in provider."}
	}
	if browser == "" {
		return "", p.fail("invalid_request", "Your browser did not keep the sign-in cookie.", "no browser binding", nil)
	}
	_, _, client, err := s.ready(ctx, p)
	if err != nil {
		return "", p.fail("provider_unavailable", p.cfg.Title+" cannot be reached right now. Try again in a minute.", err.Error(), err)
	}
	state, nonce, verifier := random(32), random(32), connectors.NewVerifier()
	if err := s.opts.Store.CreateFederationState(ctx, store.FederationState{
		StateHash: Hash(state), BrowserHash: Hash(browser), Provider: name, Nonce: nonce, Verifier: verifier,
		Request: t.Request, ReturnTo: t.ReturnTo, ExpiresAt: s.now().Add(stateLifetime),
	}); err != nil {
		return "", fmt.Errorf("federation: saving the sign-in state: %w", err)
	}
	no := false
	return client.AuthCodeURL(ctx, connectors.AuthRequest{State: state, PKCEVerifier: verifier, UsePrompt: &no,
		Params: map[string]string{"nonce": nonce}})
}

// Result is a sign-in that worked.
type Result struct {
	User     store.User
	Provider config.IdentityProvider
	Target   Target
	// How says how the person was found: "link" (an earlier link),
	// "email" (linked now by verified email) or "created".
	How string
	// AMR is the upstream ID token's amr (how the provider signed the
	// person in, its second factor included), when it gave one: at most
	// ten short values, others dropped.
	AMR []string
}

// Finish completes a sign-in from the query of the provider's redirect
// back, for the browser whose binding cookie is browser. Every failure is
// an *Error (or a store failure); nothing is created unless the ID token
// was verified and the linking rules found or allowed a user.
func (s *Service) Finish(ctx context.Context, q url.Values, browser string) (Result, error) {
	state := q.Get("state")
	if state == "" || browser == "" {
		return Result{}, &Error{Code: "invalid_state", Reason: "This sign-in link is not valid. Start again from the sign-in page.",
			Detail: "no state or no browser binding"}
	}
	st, err := s.opts.Store.TakeFederationState(ctx, Hash(state), Hash(browser), s.now())
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, &Error{Code: "invalid_state", Reason: "This sign-in link is not valid, has expired or was already used. Start again from the sign-in page.",
			Detail: "unknown, expired, used or foreign state"}
	}
	if err != nil {
		return Result{}, fmt.Errorf("federation: taking the sign-in state: %w", err)
	}
	p, ok := s.providers[st.Provider]
	if !ok {
		return Result{}, &Error{Provider: st.Provider, Title: st.Provider, Code: "unknown_provider", Reason: "This sign-in provider is no longer configured."}
	}
	res := Result{Provider: p.cfg, Target: Target{Request: st.Request, ReturnTo: st.ReturnTo}}
	if code := q.Get("error"); code != "" {
		return res, p.fail(truncate(code, 64), p.cfg.Title+" did not sign you in ("+truncate(code, 64)+").", truncate(q.Get("error_description"), 200), nil)
	}
	meta, verifier, client, err := s.ready(ctx, p)
	if err != nil {
		return res, p.fail("provider_unavailable", p.cfg.Title+" cannot be reached right now. Try again in a minute.", err.Error(), err)
	}
	// RFC 9207: a provider that names itself must be the one the state
	// was sent to (mix-up defence).
	if iss := q.Get("iss"); iss != "" && iss != meta.Issuer {
		return res, p.fail("invalid_issuer", "The answer did not come from "+p.cfg.Title+".", "iss "+truncate(iss, 100), nil)
	}
	code := q.Get("code")
	if code == "" {
		return res, p.fail("invalid_request", p.cfg.Title+" sent no authorization code.", "", nil)
	}
	tok, err := client.Exchange(ctx, code, st.Verifier, nil)
	if err != nil {
		reason := p.cfg.Title + " did not accept the sign-in."
		c := "token_error"
		var ce *connectors.Error
		if errors.As(err, &ce) && ce.Kind == connectors.KindUnreachable {
			c, reason = "provider_unavailable", p.cfg.Title+" cannot be reached right now. Try again in a minute."
		}
		return res, p.fail(c, reason, err.Error(), err)
	}
	if tok.IDToken == "" {
		return res, p.fail("invalid_id_token", p.cfg.Title+" sent no ID token.", "the token response has no id_token", nil)
	}
	idt, err := verifier.Verify(ctx, tok.IDToken)
	if err != nil {
		return res, p.fail("invalid_id_token", "The identity "+p.cfg.Title+" sent could not be verified.", err.Error(), err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		return res, p.fail("invalid_nonce", "The identity "+p.cfg.Title+" sent belongs to another sign-in.", "nonce mismatch", nil)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return res, p.fail("invalid_id_token", "The identity "+p.cfg.Title+" sent could not be read.", err.Error(), err)
	}
	user, how, err := s.Resolve(ctx, p.cfg, claims)
	if err != nil {
		return res, err
	}
	res.User, res.How, res.AMR = user, how, UpstreamAMR(claims["amr"])
	return res, nil
}

// UpstreamAMR reads an ID token's amr claim: the string values of
// letters, digits and "-_.:" up to 32 characters, at most ten, without
// "fed" (which Flowgate adds itself). Anything else is left out rather
// than passed on to Flowgate's own tokens.
func UpstreamAMR(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		s, ok := e.(string)
		if !ok || s == "" || len(s) > 32 || s == "fed" || strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:") != "" {
			continue
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
		if len(out) == 10 {
			break
		}
	}
	return out
}

// Claims are what the linking rules read from an ID token.
type Claims struct {
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	Username      string
	Roles         []string // Flowgate roles: role_map over roles_claim, plus default_roles
}

// ReadClaims applies a provider's claim settings to an ID token's claims.
func ReadClaims(c config.IdentityProvider, claims map[string]any) Claims {
	out := Claims{
		Subject:       str(claims[c.SubjectClaim]),
		Email:         strings.TrimSpace(str(claims["email"])),
		EmailVerified: truthy(claims["email_verified"]),
		Name:          str(claims["name"]),
		Username:      str(claims[c.UsernameClaim]),
	}
	var upstream []string
	switch v := claims[c.RolesClaim].(type) {
	case string:
		upstream = strings.Fields(v)
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				upstream = append(upstream, s)
			}
		}
	}
	roles := slices.Clone(c.DefaultRoles)
	for _, u := range upstream {
		if r, ok := c.RoleMap[u]; ok && r != "" {
			roles = append(roles, r)
		}
	}
	sort.Strings(roles)
	out.Roles = slices.Compact(roles)
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// truthy reads email_verified, which some providers send as a string.
func truthy(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return strings.EqualFold(b, "true")
	}
	return false
}

// by is who the changes made at a sign-in are recorded as made by.
func by(c config.IdentityProvider) string { return "federation:" + c.Name }

// Resolve finds the Flowgate user of a verified ID token's claims: an
// earlier link (provider + subject), else the one user whose email the
// provider says is verified (link_by: email), else a new user
// (create_users), else an *Error saying why. The user's roles are
// refreshed: those the provider granted last time and no longer grants
// are taken back, those it grants now are added, and roles given another
// way stay.
func (s *Service) Resolve(ctx context.Context, c config.IdentityProvider, raw map[string]any) (store.User, string, error) {
	p := &provider{cfg: c}
	cl := ReadClaims(c, raw)
	if cl.Subject == "" {
		return store.User{}, "", p.fail("invalid_id_token", "The identity "+c.Title+" sent has no subject.", "no "+c.SubjectClaim+" claim", nil)
	}
	now := s.now()
	link, err := s.opts.Store.GetFederationLink(ctx, c.Name, cl.Subject)
	switch {
	case err == nil:
		u, err := s.signInLinked(ctx, p, link, cl, now)
		return u, "link", err
	case !errors.Is(err, store.ErrNotFound):
		return store.User{}, "", fmt.Errorf("federation: reading the link: %w", err)
	}
	if c.LinkBy == "email" && cl.Email != "" {
		users, err := s.opts.Store.UsersByEmail(ctx, cl.Email)
		if err != nil {
			return store.User{}, "", fmt.Errorf("federation: finding users by email: %w", err)
		}
		switch {
		case len(users) > 0 && !cl.EmailVerified:
			return store.User{}, "", p.fail("email_not_verified",
				c.Title+" has not verified your email address, so it cannot be linked to your Flowgate account. Verify it at "+c.Title+" or ask an administrator to link your account.",
				"email_verified is not true", nil)
		case len(users) > 1:
			return store.User{}, "", p.fail("email_ambiguous",
				"More than one Flowgate account has your email address, so none was linked. Ask an administrator to link your account.", "", nil)
		case len(users) == 1:
			u := users[0]
			if u.Disabled {
				return store.User{}, "", p.fail("user_disabled", "Your Flowgate account is disabled.", "", nil)
			}
			l := store.FederationLink{Provider: c.Name, Subject: cl.Subject, Username: u.Username, Email: cl.Email, CreatedAt: now, LastLoginAt: now}
			if err := s.opts.Store.CreateFederationLink(ctx, l); err != nil {
				return store.User{}, "", fmt.Errorf("federation: linking %s: %w", u.Username, err)
			}
			audit.Change{Event: audit.FederationLinked, By: by(c), Detail: "user " + u.Username + " linked to " + c.Name + " by verified email"}.Record(ctx, s.opts.Auditor)
			u, err = s.signInLinked(ctx, p, l, cl, now)
			return u, "email", err
		}
	}
	if !c.CreateUsers {
		return store.User{}, "", p.fail("no_account",
			"No Flowgate account is linked to your "+c.Title+" account, and accounts are not created automatically. Ask an administrator for access.", "", nil)
	}
	return s.create(ctx, p, cl, now)
}

// signInLinked refreshes a linked user's roles and the link.
func (s *Service) signInLinked(ctx context.Context, p *provider, l store.FederationLink, cl Claims, now time.Time) (store.User, error) {
	u, err := s.opts.Store.GetUser(ctx, l.Username)
	if err != nil {
		return store.User{}, fmt.Errorf("federation: reading linked user %s: %w", l.Username, err)
	}
	if u.Disabled {
		return store.User{}, p.fail("user_disabled", "Your Flowgate account is disabled.", "", nil)
	}
	roles := make([]string, 0, len(u.Roles)+len(cl.Roles))
	for _, r := range u.Roles {
		if !slices.Contains(l.Roles, r) {
			roles = append(roles, r)
		}
	}
	roles = append(roles, cl.Roles...)
	sort.Strings(roles)
	roles = slices.Compact(roles)
	old := slices.Sorted(slices.Values(u.Roles))
	if !slices.Equal(old, roles) {
		u.Roles, u.UpdatedAt = roles, now
		if err := s.opts.Store.UpdateUser(ctx, u); err != nil {
			return store.User{}, fmt.Errorf("federation: updating roles of %s: %w", u.Username, err)
		}
		audit.Change{Event: audit.UserUpdated, By: by(p.cfg), Detail: "user " + u.Username + ": roles from " + p.cfg.Name}.Record(ctx, s.opts.Auditor)
	}
	l.Email, l.Roles, l.LastLoginAt = cl.Email, cl.Roles, now
	if err := s.opts.Store.UpdateFederationLink(ctx, l); err != nil {
		return store.User{}, fmt.Errorf("federation: recording the sign-in: %w", err)
	}
	return u, nil
}

// create makes a user for a person's first sign-in, named from
// username_claim (else the email's local part, else "user"), made unique
// with -2, -3…, together with the link in one transaction.
func (s *Service) create(ctx context.Context, p *provider, cl Claims, now time.Time) (store.User, string, error) {
	base := Username(cl.Username)
	if base == "" {
		local, _, _ := strings.Cut(cl.Email, "@")
		base = Username(local)
	}
	if base == "" {
		base = "user"
	}
	for i := 1; i <= 100; i++ {
		name := base
		if i > 1 {
			suffix := fmt.Sprintf("-%d", i)
			name = base[:min(len(base), 64-len(suffix))] + suffix
		}
		if _, err := s.opts.Store.GetUser(ctx, name); err == nil {
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return store.User{}, "", fmt.Errorf("federation: %w", err)
		}
		u := store.User{Username: name, Email: cl.Email, EmailVerified: cl.EmailVerified && cl.Email != "", Name: cl.Name,
			Roles: cl.Roles, CreatedAt: now, UpdatedAt: now}
		l := store.FederationLink{Provider: p.cfg.Name, Subject: cl.Subject, Username: name, Email: cl.Email, Roles: cl.Roles, CreatedAt: now, LastLoginAt: now}
		err := s.opts.Store.CreateFederatedUser(ctx, u, l)
		if errors.Is(err, store.ErrConflict) {
			// Either the name was taken meanwhile (try the next) or the
			// same person's other sign-in linked first (use that).
			if l2, lerr := s.opts.Store.GetFederationLink(ctx, p.cfg.Name, cl.Subject); lerr == nil {
				u, err := s.signInLinked(ctx, p, l2, cl, now)
				return u, "link", err
			}
			continue
		}
		if err != nil {
			return store.User{}, "", fmt.Errorf("federation: creating user %s: %w", name, err)
		}
		audit.Change{Event: audit.UserCreated, By: by(p.cfg), Detail: "user " + name + " at first sign-in through " + p.cfg.Name}.Record(ctx, s.opts.Auditor)
		audit.Change{Event: audit.FederationLinked, By: by(p.cfg), Detail: "user " + name + " linked to " + p.cfg.Name}.Record(ctx, s.opts.Auditor)
		return u, "created", nil
	}
	return store.User{}, "", p.fail("no_username", "No free username could be made for you. Ask an administrator for access.", "", nil)
}

// Username turns a claim into a valid username (letters, digits and
// . _ @ -, at most 64), replacing other characters with "-"; "" when
// nothing usable is left.
func Username(claim string) string {
	var b strings.Builder
	for _, r := range strings.TrimSpace(claim) {
		switch {
		case r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._@-", r)):
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-.")
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// LinkedUser is the user a trusted issuer's token belongs to: when an
// identity provider has the token's issuer and the token's subject (sub,
// or oid for Entra) is linked, that user's name; "" otherwise.
func (s *Service) LinkedUser(ctx context.Context, issuer, sub, oid string) (string, error) {
	c, ok := s.ProviderForIssuer(issuer)
	if !ok {
		return "", nil
	}
	subject := sub
	if c.SubjectClaim == "oid" {
		subject = oid
	}
	if subject == "" {
		return "", nil
	}
	l, err := s.opts.Store.GetFederationLink(ctx, c.Name, subject)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("federation: %w", err)
	}
	return l.Username, nil
}

// Links lists a user's links ("" lists everyone's).
func (s *Service) Links(ctx context.Context, username string) ([]store.FederationLink, error) {
	return s.opts.Store.ListFederationLinks(ctx, username)
}

// RemoveLink removes a link, audited as made by who. The user stays; the
// person's next sign-in through that provider follows the linking rules
// again.
func (s *Service) RemoveLink(ctx context.Context, who, provider, subject string) error {
	l, err := s.opts.Store.GetFederationLink(ctx, provider, subject)
	if err != nil {
		return fmt.Errorf("federation: %w", err)
	}
	if err := s.opts.Store.DeleteFederationLink(ctx, provider, subject); err != nil {
		return fmt.Errorf("federation: %w", err)
	}
	audit.Change{Event: audit.FederationUnlinked, By: who, Detail: "user " + l.Username + " unlinked from " + provider}.Record(ctx, s.opts.Auditor)
	return nil
}

// TestResult is what a provider check found.
type TestResult struct {
	Metadata Metadata
	Keys     int
}

// Test reads a provider's discovery document and key set now, through
// the egress policy, as its next sign-in would.
func (s *Service) Test(ctx context.Context, name string) (TestResult, error) {
	p, ok := s.providers[name]
	if !ok {
		return TestResult{}, fmt.Errorf("no identity provider %q", name)
	}
	m, err := s.fetchMetadata(ctx, p.cfg)
	if err != nil {
		return TestResult{}, err
	}
	var jwks struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := s.getJSON(ctx, m.JWKSURI, &jwks); err != nil {
		return TestResult{Metadata: m}, fmt.Errorf("key set %s: %w", m.JWKSURI, err)
	}
	if len(jwks.Keys) == 0 {
		return TestResult{Metadata: m}, fmt.Errorf("key set %s has no keys", m.JWKSURI)
	}
	return TestResult{Metadata: m, Keys: len(jwks.Keys)}, nil
}

// EndSessionURL is the provider's RP-initiated logout URL, with our
// client_id, when its discovery document advertised one; "" otherwise.
func (s *Service) EndSessionURL(ctx context.Context, name string) string {
	p, ok := s.providers[name]
	if !ok {
		return ""
	}
	m, _, _, err := s.ready(ctx, p)
	if err != nil || m.EndSessionEndpoint == "" {
		return ""
	}
	u, err := url.Parse(m.EndSessionEndpoint)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Set("client_id", p.cfg.ClientID)
	u.RawQuery = q.Encode()
	return u.String()
}

// Hash is how states and browser bindings are stored: hex SHA-256.
func Hash(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

// NewBrowserBinding makes the value of a browser-binding cookie.
func NewBrowserBinding() string { return random(32) }

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
