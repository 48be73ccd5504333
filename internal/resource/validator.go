// Package resource makes Flowgate's APIs an OAuth 2.0 resource server (docs/api.md): it validates
// bearer tokens from Flowgate's own authorization server and from trusted external issuers,
// turns them into a Principal, and answers failures as RFC 6750 says.
//
// Every request's token is checked (signature, iss, aud, exp/nbf/iat, revocation). A verified
// signature and its claims are remembered in memory by the token's SHA-256, never past exp and
// only while the issuer is trusted and still publishes the key (docs/security.md); expiry,
// revocation, roles and DPoP proofs are checked again on every request. Keys are cached per
// issuer and refreshed in the background; a token naming an unknown kid makes the issuer's key
// set be refetched at most once per 10 s.
package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/flowgate/flowgate/internal/dpop"
	"github.com/flowgate/flowgate/internal/egress"
	"github.com/flowgate/flowgate/internal/principal"
	"github.com/flowgate/flowgate/internal/tokenrules"
)

// Leeway is the clock skew allowed on exp, nbf and iat.
const Leeway = 60 * time.Second

// allowedAlgs are the only signature algorithms accepted: asymmetric ones. "none" and HMAC are
// absent, so a token "signed" with an issuer's public key as an HMAC secret is refused before
// any key is looked at.
func allowedAlgs() []string {
	return []string{
		"RS256", "RS384", "RS512",
		"PS256", "PS384", "PS512",
		"ES256", "ES384", "ES512",
		"EdDSA",
	}
}

// ErrUnknownPrincipal is what OwnIssuer.UserRoles and ClientRoles return (possibly wrapped) when
// the user or client no longer exists or is disabled; the token is then refused as invalid.
// Any other error from them means the lookup itself failed and the request gets a 503.
var ErrUnknownPrincipal = errors.New("unknown or disabled principal")

// OwnIssuer describes Flowgate's own authorization server, which is always trusted. Its keys
// are used in-process: no HTTP round trip to ourselves.
type OwnIssuer struct {
	// Issuer is Flowgate's issuer URL (the public URL).
	Issuer string
	// Audiences are accepted in aud besides Issuer: resources clients may request.
	Audiences []string
	// Keys returns the public key for a token, normally by its kid from the current and
	// previous signing keys. keyfunc.NewJWKSetJSON(jwks).Keyfunc adapts a public JWKS.
	Keys jwt.Keyfunc
	// Revoked reports whether the token with this jti was revoked. Nil: nothing is revoked.
	Revoked func(ctx context.Context, jti string) (bool, error)
	// ClientRoles returns the roles a client holds for client-credentials tokens.
	ClientRoles func(ctx context.Context, clientID string) ([]string, error)
	// UserRoles returns the roles of a user (the token's sub is the username).
	UserRoles func(ctx context.Context, username string) ([]string, error)
}

// Options tune a Validator; the zero value is fine, each zero field taking
// its default.
type Options struct {
	// HTTPClient fetches metadata and key sets; nil means one under
	// egress.Default() bounded by HTTPTimeout.
	HTTPClient *http.Client
	// HTTPTimeout bounds each metadata or key set fetch; 10 s when zero.
	HTTPTimeout time.Duration
	// RefreshInterval is how often key sets are refetched in the
	// background; 1 h when zero.
	RefreshInterval time.Duration
	// UnknownKIDInterval is the least time between two key set refetches
	// of one issuer caused by tokens naming an unknown kid; 10 s when
	// zero, so a flood of forged kids cannot make Flowgate hammer an
	// issuer.
	UnknownKIDInterval time.Duration
	// DiscoveryRetryMin and DiscoveryRetryMax bound the backoff for
	// issuers whose metadata could not be read at start: the first retry
	// after Min, doubling up to Max; 10 s and 5 min when zero.
	DiscoveryRetryMin, DiscoveryRetryMax time.Duration
	// Realm is the realm of WWW-Authenticate challenges; "flowgate" when
	// empty.
	Realm string
	// Logger records unreachable issuers (never tokens); nil means
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock for exp/nbf/iat checks; nil means time.Now.
	Now func() time.Time
	// TokenCacheSize is how many verified tokens are remembered (by hash), least recently
	// used out first; DefaultTokenCacheSize when zero, none when negative.
	TokenCacheSize int
	// DPoP checks the proofs of DPoP-bound tokens (shared with the token endpoint, for the
	// replay table and nonces); nil refuses the DPoP scheme.
	DPoP *dpop.Verifier
	// LinkedUser maps a trusted issuer's token to the Flowgate user its
	// subject is linked to through federation (an identity provider with
	// the same issuer), so one person is one principal whether they signed
	// in through the browser or call the APIs with the provider's token.
	// It returns "" when the subject is not linked. Nil: no mapping.
	LinkedUser func(ctx context.Context, issuer string, claims LinkClaims) (string, error)
}

// LinkClaims are the claims a federation link may be keyed by.
type LinkClaims struct {
	Sub, OID string
}

// withDefaults fills in the zero fields.
func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.HTTPTimeout, 10*time.Second)
	def(&o.RefreshInterval, time.Hour)
	def(&o.UnknownKIDInterval, 10*time.Second)
	def(&o.DiscoveryRetryMin, 10*time.Second)
	def(&o.DiscoveryRetryMax, 5*time.Minute)
	if o.Realm == "" {
		o.Realm = "flowgate"
	}
	if o.HTTPClient == nil {
		o.HTTPClient = egress.Default().Client(o.HTTPTimeout)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validator validates bearer tokens. It is safe for concurrent use.
type Validator struct {
	opts     Options
	log      *slog.Logger
	own      OwnIssuer
	ownParse *jwt.Parser
	// base bounds every issuer's background work; each issuer also has its
	// own cancel, so SetIssuers can stop the ones it drops.
	base    context.Context
	issuers atomic.Pointer[issuerSet]
	// setMu serialises SetIssuers; readers never take it.
	setMu sync.Mutex
	// cache remembers verified tokens; nil when switched off.
	cache *tokenCache
}

// issuerSet is an immutable snapshot of the trusted external issuers, so
// Validate reads it without locks while SetIssuers swaps in a new one.
type issuerSet struct {
	remotes []*remoteIssuer          // in configuration order, for Status
	byIss   map[string]*remoteIssuer // by exact iss
}

// NewValidator builds the validator for Flowgate's own issuer and the trusted external
// issuers. It reads each issuer's metadata and key set before returning, so the first requests
// succeed; an issuer that cannot be reached or is misconfigured is logged, shown in Status, and
// retried in the background, and does not make NewValidator fail. Only a programming or
// configuration error that no retry can fix (no own issuer, duplicate names) does.
//
// ctx bounds the background work (key refreshes, discovery retries): cancel it on shutdown.
func NewValidator(ctx context.Context, own OwnIssuer, issuers []IssuerConfig, opts Options) (*Validator, error) {
	o := opts.withDefaults()
	if own.Issuer == "" || own.Keys == nil {
		return nil, errors.New("resource: own issuer needs Issuer and Keys")
	}
	v := &Validator{opts: o, log: o.Logger, own: own, base: ctx, cache: newTokenCache(o.TokenCacheSize)}
	v.ownParse = jwt.NewParser(v.parserOptions(own.Issuer, append([]string{own.Issuer}, own.Audiences...))...)
	v.issuers.Store(&issuerSet{byIss: map[string]*remoteIssuer{}})
	if err := v.SetIssuers(issuers); err != nil {
		return nil, err
	}
	return v, nil
}

// SetIssuers replaces the trusted external issuers, for configuration
// changed while serving (the admin API). Issuers whose configuration is
// unchanged keep their key sets; new ones are discovered before it returns
// (a failure is shown in Status and retried); dropped ones stop their
// background work. The whole list is checked first: on error nothing
// changes.
func (v *Validator) SetIssuers(issuers []IssuerConfig) error {
	v.setMu.Lock()
	defer v.setMu.Unlock()
	old := v.issuers.Load()
	next := &issuerSet{byIss: make(map[string]*remoteIssuer, len(issuers))}
	names := map[string]bool{OwnIssuerName: true}
	var fresh []*remoteIssuer
	for _, cfg := range issuers {
		switch {
		case cfg.Name == "" || cfg.Issuer == "":
			return fmt.Errorf("resource: trusted issuer %q: name and issuer are required", cfg.Name)
		case names[cfg.Name]:
			return fmt.Errorf("resource: trusted issuer name %q is used twice (or is reserved)", cfg.Name)
		case cfg.Issuer == v.own.Issuer || next.byIss[cfg.Issuer] != nil:
			return fmt.Errorf("resource: trusted issuer %q: issuer %s is already trusted", cfg.Name, cfg.Issuer)
		}
		names[cfg.Name] = true
		if prev := old.byIss[cfg.Issuer]; prev != nil && prev.cfg.Equal(cfg) {
			next.remotes = append(next.remotes, prev)
			next.byIss[cfg.Issuer] = prev
			continue
		}
		ri := v.newRemote(cfg)
		fresh = append(fresh, ri)
		next.remotes = append(next.remotes, ri)
		next.byIss[cfg.Issuer] = ri
	}

	var wg sync.WaitGroup
	for _, ri := range fresh {
		if ri.parser == nil {
			// Without an audience any token for any API of that issuer would pass; no retry
			// fixes configuration, so this one stays unavailable.
			ri.status.Error = "configuration: audience is required"
			v.log.ErrorContext(ri.ctx, "trusted issuer misconfigured", "issuer", ri.cfg.Name, "error", ri.status.Error)
			continue
		}
		wg.Go(func() {
			if v.start(ri.ctx, ri) {
				return
			}
			v.log.ErrorContext(ri.ctx, "trusted issuer unavailable, retrying in the background",
				"issuer", ri.cfg.Name, "metadata_url", ri.cfg.metadataURL(), "error", ri.statusError())
			go v.retry(ri.ctx, ri)
		})
	}
	wg.Wait()
	v.issuers.Store(next)
	for _, ri := range old.remotes {
		if next.byIss[ri.cfg.Issuer] != ri {
			ri.cancel()
			if v.cache != nil {
				v.cache.forgetIssuer(ri)
			}
		}
	}
	return nil
}

func (v *Validator) newRemote(cfg IssuerConfig) *remoteIssuer {
	ctx, cancel := context.WithCancel(v.base)
	ri := &remoteIssuer{
		cfg:    cfg,
		ctx:    ctx,
		cancel: cancel,
		status: IssuerStatus{Name: cfg.Name, Issuer: cfg.Issuer, MetadataURL: cfg.metadataURL()},
	}
	if cfg.Audience != "" {
		ri.parser = jwt.NewParser(v.parserOptions(cfg.Issuer, []string{cfg.Audience})...)
	}
	for _, c := range []string{cfg.SubjectClaim, cfg.ScopeClaim, cfg.RolesClaim} {
		if c != "" && !knownClaim(c) && !slices.Contains(ri.extraNames, c) {
			ri.extraNames = append(ri.extraNames, c)
		}
	}
	return ri
}

// Equal reports whether two issuer configurations are the same in every
// field.
func (c IssuerConfig) Equal(o IssuerConfig) bool {
	return c.Name == o.Name && c.Issuer == o.Issuer && c.MetadataURL == o.MetadataURL && c.Audience == o.Audience &&
		c.SubjectClaim == o.SubjectClaim && c.ScopeClaim == o.ScopeClaim && c.RolesClaim == o.RolesClaim &&
		maps.Equal(c.ScopeMap, o.ScopeMap)
}

// knownClaim reports whether tokenClaims decodes the claim into a field.
func knownClaim(name string) bool {
	switch name {
	case "sub", "oid", "upn", "email", "preferred_username", "scope", "scp", "roles":
		return true
	}
	return false
}

func (v *Validator) parserOptions(iss string, aud []string) []jwt.ParserOption {
	po := []jwt.ParserOption{
		jwt.WithValidMethods(allowedAlgs()),
		jwt.WithLeeway(Leeway),
		jwt.WithIssuer(iss),
		jwt.WithAudience(aud...),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	}
	if v.opts.Now != nil {
		po = append(po, jwt.WithTimeFunc(v.opts.Now))
	}
	return po
}

// Status reports each issuer, Flowgate's own first, for /readyz details. An issuer that is not
// ready does not make Flowgate unready: only its tokens are refused.
func (v *Validator) Status() []IssuerStatus {
	set := v.issuers.Load()
	out := make([]IssuerStatus, 0, 1+len(set.remotes))
	out = append(out, IssuerStatus{Name: OwnIssuerName, Issuer: v.own.Issuer, Ready: true})
	for _, ri := range set.remotes {
		ri.mu.Lock()
		s := ri.status
		ri.mu.Unlock()
		if ks := ri.keys.Load(); ks != nil {
			if all, err := ks.cache.KeyReadAll(context.Background()); err == nil {
				s.Keys = len(all)
			}
		}
		s.Ready = ri.keys.Load() != nil && s.Keys > 0
		out = append(out, s)
	}
	return out
}

// Validate checks a bearer token and returns the caller it stands for. Every error is a
// *TokenError saying which check failed. A token bound to a key (cnf) is refused: RFC 9449
// §7.2 says a bound token must not be taken as a plain bearer token (see ValidateDPoP).
func (v *Validator) Validate(ctx context.Context, raw string) (*Principal, error) {
	p, jkt, err := v.validate(ctx, raw)
	if err != nil {
		return nil, err
	}
	if jkt != "" {
		return nil, invalidToken("token is bound to a key (DPoP): send it as Authorization: DPoP with a proof", nil)
	}
	return p, nil
}

// ValidateDPoP checks a token sent with the DPoP scheme (RFC 9449 §7.1): the token as
// Validate does, then the request's proof (its DPoP header values), which must be made for this
// request (method and URL as the client addressed it) with the key the token is bound to and
// carry the token's hash. Proof failures are invalid_dpop_proof or use_dpop_nonce.
func (v *Validator) ValidateDPoP(ctx context.Context, raw string, proofs []string, method, url string) (*Principal, error) {
	p, jkt, err := v.validate(ctx, raw)
	if err != nil {
		return nil, err
	}
	if jkt == "" {
		return nil, invalidToken("token is not DPoP-bound: send it as Authorization: Bearer", nil)
	}
	if v.opts.DPoP == nil {
		return nil, invalidToken("DPoP proofs cannot be checked on this server", nil)
	}
	proof, err := v.opts.DPoP.Verify(ctx, proofs, dpop.Request{Method: method, URL: url, AccessToken: raw})
	var de *dpop.Error
	switch {
	case errors.As(err, &de):
		return nil, &TokenError{Code: de.Code, Description: de.Description, Nonce: de.Nonce}
	case err != nil:
		return nil, &TokenError{Code: CodeTemporarilyUnavailable, Description: "DPoP proof cannot be checked right now", Err: err}
	case proof.JKT != jkt:
		return nil, &TokenError{Code: dpop.CodeInvalidProof, Description: "DPoP proof key does not match the key the token is bound to"}
	}
	return p, nil
}

// validate checks a token and returns the caller and the thumbprint of the key it is bound to
// ("" when unbound).
func (v *Validator) validate(ctx context.Context, raw string) (*Principal, string, error) {
	// A remembered token is this exact string, which passed every check below when it was
	// verified, so its spelling need not be checked again.
	var h [32]byte
	if v.cache != nil {
		h = tokenHash(raw)
		if p, jkt, ok, err := v.fromCache(ctx, h); ok {
			return p, jkt, err
		}
	}
	// Before any parsing, for every issuer: the library accepts other spellings of a signed
	// token and ignores crit.
	if err := tokenrules.CheckCompact(raw); err != nil {
		return nil, "", invalidToken(err.Error(), nil)
	}
	iss, err := peekIssuer(raw)
	if err != nil {
		return nil, "", invalidToken("malformed token: not a signed JWT", err)
	}
	if iss == "" {
		return nil, "", invalidToken("token has no iss claim", nil)
	}
	if iss == v.own.Issuer {
		return v.validateOwn(ctx, raw, h)
	}
	ri := v.issuers.Load().byIss[iss]
	if ri == nil {
		return nil, "", invalidToken("unknown issuer "+quoteSafe(iss, 100), nil)
	}
	return v.validateRemote(ctx, ri, raw, h)
}

func (v *Validator) validateOwn(ctx context.Context, raw string, h [32]byte) (*Principal, string, error) {
	c, jkt, err := v.verify(raw, h, nil, v.ownParse, v.own.Keys, nil, func() []string {
		return append([]string{v.own.Issuer}, v.own.Audiences...)
	})
	if err != nil {
		return nil, "", err
	}
	return v.finishOwn(ctx, c, jkt)
}

// finishOwn checks what is read afresh on every request for one of Flowgate's own tokens whose
// signature and claims are verified (revocation, the user or client and their roles) and
// builds its principal.
func (v *Validator) finishOwn(ctx context.Context, c *tokenClaims, jkt string) (*Principal, string, error) {
	if c.Subject == "" {
		return nil, "", invalidToken("token has no sub claim", nil)
	}
	if v.own.Revoked != nil {
		if c.ID == "" {
			return nil, "", invalidToken("token has no jti claim, so its revocation cannot be checked", nil)
		}
		revoked, err := v.own.Revoked(ctx, c.ID)
		if err != nil {
			return nil, "", &TokenError{Code: CodeTemporarilyUnavailable,
				Description: "token revocation cannot be checked right now",
				Err:         fmt.Errorf("revocation check: %w", err)}
		}
		if revoked {
			return nil, "", invalidToken("token was revoked", nil)
		}
	}
	p := v.newPrincipal(c, OwnIssuerName)
	p.Scopes = slices.Clone(c.Scope)
	var roles []string
	// The grant the token records says whom it stands for; a username may equal a client id.
	forClient, err := tokenrules.ForClient(c.Grant, c.Subject, c.ClientID)
	if err != nil {
		return nil, "", invalidToken(err.Error(), nil)
	}
	if forClient {
		p.Kind, p.ID = KindClient, principal.Client(c.ClientID)
		if v.own.ClientRoles != nil {
			roles, err = v.own.ClientRoles(ctx, c.ClientID)
		}
	} else {
		p.Kind, p.ID = KindUser, principal.User(c.Subject)
		if v.own.UserRoles != nil {
			roles, err = v.own.UserRoles(ctx, c.Subject)
		}
	}
	switch {
	case errors.Is(err, ErrUnknownPrincipal):
		return nil, "", invalidToken(string(p.Kind)+" "+quoteSafe(p.Subject, 100)+" is unknown or disabled", err)
	case err != nil:
		return nil, "", &TokenError{Code: CodeTemporarilyUnavailable,
			Description: "roles cannot be looked up right now",
			Err:         fmt.Errorf("roles of %s: %w", p.ID, err)}
	}
	p.Roles = roles
	return p, jkt, nil
}

func (v *Validator) validateRemote(ctx context.Context, ri *remoteIssuer, raw string, h [32]byte) (*Principal, string, error) {
	ks := ri.keys.Load()
	if ks == nil {
		return nil, "", invalidToken("keys of issuer "+ri.cfg.Name+" are not available (its metadata could not be read)",
			errors.New(ri.statusError()))
	}
	c, jkt, err := v.verify(raw, h, ri, ri.parser, ks.keyfunc(ctx), ri.extraNames, func() []string { return []string{ri.cfg.Audience} })
	if err != nil {
		return nil, "", err
	}
	return v.finishRemote(ctx, ri, c, jkt)
}

// finishRemote maps a trusted issuer's verified token to its principal (subject, scopes,
// roles, a federation link read afresh).
func (v *Validator) finishRemote(ctx context.Context, ri *remoteIssuer, c *tokenClaims, jkt string) (*Principal, string, error) {
	cfg := ri.cfg
	p := v.newPrincipal(c, cfg.Name)
	p.Kind = KindExternal

	switch cfg.SubjectClaim {
	case "", "sub":
		p.Subject = c.Subject
	case "oid":
		p.Subject = c.OID
	case "upn":
		p.Subject = c.UPN
	case "email":
		p.Subject = c.Email
	case "preferred_username":
		p.Subject = c.PreferredUsername
	default:
		p.Subject = c.extraString(cfg.SubjectClaim)
	}
	if p.Subject == "" {
		claim := orDefault(cfg.SubjectClaim, "sub")
		return nil, "", invalidToken("token has no "+quoteSafe(claim, 60)+" claim (the subject for issuer "+cfg.Name+")", nil)
	}
	p.ID = principal.External(cfg.Name, p.Subject)

	var scopes []string
	switch cfg.ScopeClaim {
	case "":
		scopes = c.Scope
		if scopes == nil {
			scopes = c.Scp
		}
	case "scope":
		scopes = c.Scope
	case "scp":
		scopes = c.Scp
	default:
		scopes = c.extraList(cfg.ScopeClaim)
	}
	if len(cfg.ScopeMap) > 0 {
		scopes = slices.Clone(scopes) // the claims may be remembered and shared: never change them
		for i, s := range scopes {
			if m, ok := cfg.ScopeMap[s]; ok {
				scopes[i] = m
			}
		}
	}
	p.Scopes = scopes

	switch cfg.RolesClaim {
	case "", "roles":
		p.Roles = slices.Clone(c.Roles)
	default:
		p.Roles = c.extraList(cfg.RolesClaim)
	}
	p, err := v.linked(ctx, p, c)
	return p, jkt, err
}

// linked turns an external principal whose subject is linked to a
// Flowgate user into that user: user:<username> with the user's roles,
// the token's scopes kept. A linked user who is disabled or gone makes
// the token invalid, as their own tokens would be.
func (v *Validator) linked(ctx context.Context, p *Principal, c *tokenClaims) (*Principal, error) {
	if v.opts.LinkedUser == nil {
		return p, nil
	}
	username, err := v.opts.LinkedUser(ctx, c.Issuer, LinkClaims{Sub: c.Subject, OID: c.OID})
	if err != nil {
		return nil, &TokenError{Code: CodeTemporarilyUnavailable, Description: "the token's user cannot be looked up right now",
			Err: fmt.Errorf("federation link of %s: %w", p.ID, err)}
	}
	if username == "" {
		return p, nil
	}
	var roles []string
	if v.own.UserRoles != nil {
		roles, err = v.own.UserRoles(ctx, username)
	}
	switch {
	case errors.Is(err, ErrUnknownPrincipal):
		return nil, invalidToken("user "+quoteSafe(username, 100)+" is unknown or disabled", err)
	case err != nil:
		return nil, &TokenError{Code: CodeTemporarilyUnavailable, Description: "roles cannot be looked up right now",
			Err: fmt.Errorf("roles of user %s: %w", username, err)}
	}
	p.Kind, p.ID, p.Subject, p.Roles = KindUser, principal.User(username), username, roles
	return p, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (v *Validator) newPrincipal(c *tokenClaims, issuerName string) *Principal {
	p := &Principal{
		Subject:    c.Subject,
		Issuer:     c.Issuer,
		IssuerName: issuerName,
		ClientID:   c.ClientID,
		Audience:   slices.Clone([]string(c.Audience)),
		TokenID:    c.ID,
	}
	if p.ClientID == "" {
		p.ClientID = orDefault(c.AZP, c.AppID)
	}
	if c.Exp != 0 {
		p.ExpiresAt = c.exp.UTC()
	}
	return p
}

// verify checks a token's signature and claims with parser and kf and remembers the result
// under h when the cache is on. The claims returned may be shared with other requests: callers never change them.
// wantAud names the accepted audiences in the error, built only when the check fails.
func (v *Validator) verify(raw string, h [32]byte, ri *remoteIssuer, parser *jwt.Parser, kf jwt.Keyfunc, extraNames []string,
	wantAud func() []string) (*tokenClaims, string, error) {
	c := &tokenClaims{extraNames: extraNames}
	var used any
	tok, err := parser.ParseWithClaims(raw, c, func(t *jwt.Token) (any, error) {
		k, err := kf(t)
		used = k
		return k, err
	})
	if err != nil {
		return nil, "", v.parseError(err, tok, c, wantAud())
	}
	jkt, berr := bindingOf(c)
	if berr != nil {
		return nil, "", berr
	}
	if v.cache != nil {
		v.remember(h, c, jkt, ri, tok, used)
	}
	return c, jkt, nil
}

// bindingOf returns the DPoP key thumbprint a token is bound to (cnf.jkt, RFC 9449 §6), ""
// for an unbound token. A token bound otherwise (a client certificate, RFC 8705) is refused:
// Flowgate cannot check that binding, and a bound token must never pass as a bearer one.
func bindingOf(c *tokenClaims) (string, *TokenError) {
	if len(c.Cnf) == 0 || string(c.Cnf) == "null" {
		return "", nil
	}
	var cn struct {
		JKT string `json:"jkt"`
	}
	if err := json.Unmarshal(c.Cnf, &cn); err != nil || cn.JKT == "" {
		return "", invalidToken("token is bound to a key Flowgate cannot check (cnf without jkt)", nil)
	}
	return cn.JKT, nil
}

// parseError turns a jwt parse failure into the description of the check that failed. tok and
// c hold whatever the parser decoded before the failure.
func (v *Validator) parseError(err error, tok *jwt.Token, c *tokenClaims, wantAud []string) *TokenError {
	var desc string
	switch {
	case errors.Is(err, errUnknownKID):
		desc = "bad signature: signing key is unknown to the issuer"
	case errors.Is(err, jwt.ErrTokenMalformed):
		desc = "malformed token"
	case errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, jwt.ErrTokenSignatureInvalid):
		// The algorithm allow-list and the signature check both fail with these.
		alg := ""
		if tok != nil {
			alg, _ = tok.Header["alg"].(string)
		}
		switch {
		case !slices.Contains(allowedAlgs(), alg):
			desc = "algorithm " + quoteSafe(alg, 20) + " is not allowed"
		case errors.Is(err, jwt.ErrTokenUnverifiable): // the keyfunc found no key
			desc = "bad signature: signing key is unknown to the issuer"
		default:
			desc = "bad signature"
		}
	case errors.Is(err, jwt.ErrTokenExpired):
		desc = "token expired"
		desc += " at " + c.exp.UTC().Format(time.RFC3339)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		desc = "token is not valid yet"
		desc += " (nbf " + c.nbf.UTC().Format(time.RFC3339) + ")"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		desc = "token is issued in the future"
		desc += " (iat " + c.iat.UTC().Format(time.RFC3339) + ")"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && c.Exp == 0:
		desc = "token has no exp claim"
	case errors.Is(err, jwt.ErrTokenInvalidAudience), errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && len(c.Audience) == 0:
		found := "none"
		if len(c.Audience) > 0 {
			found = strings.Join(c.Audience, " ")
		}
		desc = "wrong audience: expected " + strings.Join(wantAud, " or ") + ", found " + quoteSafe(found, 200)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		desc = "wrong issuer"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		desc = "token is missing a required claim"
	default:
		desc = "invalid token"
	}
	return invalidToken(desc, err)
}
