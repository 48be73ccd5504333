package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// IssuerConfig is one trusted external issuer (a trusted_issuers entry of the configuration).
type IssuerConfig struct {
	Name         string            // the principal prefix: "<name>:<subject>"
	Issuer       string            // must equal the token's iss exactly
	MetadataURL  string            // default: Issuer + "/.well-known/openid-configuration"
	Audience     string            // required: the token's aud must contain it
	SubjectClaim string            // default "sub"; e.g. oid, upn, email, preferred_username
	ScopeClaim   string            // "scp" or "scope"; default: scope, else scp
	RolesClaim   string            // default "roles"; a dotted path reaches into objects
	ScopeMap     map[string]string // external scope -> Flowgate scope; others keep their name
}

// metadataURL is the configured metadata URL or the OpenID discovery default.
func (c IssuerConfig) metadataURL() string {
	if c.MetadataURL != "" {
		return c.MetadataURL
	}
	return strings.TrimSuffix(c.Issuer, "/") + "/.well-known/openid-configuration"
}

// IssuerStatus is how one trusted issuer stands, for /readyz details and the admin site.
type IssuerStatus struct {
	Name        string    `json:"name"`
	Issuer      string    `json:"issuer"`
	MetadataURL string    `json:"metadata_url,omitempty"`
	JWKSURI     string    `json:"jwks_uri,omitempty"`
	Ready       bool      `json:"ready"` // tokens from it can be validated now
	Keys        int       `json:"keys"`  // keys currently known
	Error       string    `json:"error,omitempty"`
	CheckedAt   time.Time `json:"checked_at,omitzero"` // last metadata or key set fetch
}

// remoteIssuer is a trusted external issuer: its rules, and its key set once discovery worked.
type remoteIssuer struct {
	cfg IssuerConfig
	// ctx ends when the issuer is dropped by SetIssuers or the validator's
	// context ends; it bounds discovery retries and key refreshes.
	ctx        context.Context
	cancel     context.CancelFunc
	parser     *jwt.Parser
	extraNames []string // configured claim names that tokenClaims has no field for

	keys atomic.Pointer[keySet] // nil until discovery succeeds

	mu     sync.Mutex // guards status
	status IssuerStatus
}

func (ri *remoteIssuer) setStatus(f func(s *IssuerStatus)) {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	f(&ri.status)
}

// keySet is one issuer's JWK Set, fetched from its jwks_uri and refreshed in the background by
// jwkset; keyfunc turns it into a jwt.Keyfunc.
type keySet struct {
	kf keyfunc.Keyfunc
	// cache is the HTTP-backed storage itself: reading it never fetches.
	cache jwkset.Storage
	// unknownKID allows one refetch per interval when a token names a kid not in cache.
	//
	// jwkset has its own limiter for this (HTTPClientOptions.RefreshUnknownKID), but it Waits:
	// with a flood of unknown kids every request would block for up to RateLimitWaitMax, and
	// that same bound also cuts short the refetch itself. So the limiter here refuses at once
	// (Allow), and jwkset's limiter is set to rate.Inf so it never delays the one refetch let
	// through.
	unknownKID *rate.Limiter
}

// errUnknownKID is the keyfunc's answer for a kid the issuer does not publish (after a refetch,
// or when the refetch was not allowed yet).
var errUnknownKID = errors.New("unknown key id")

// keyfunc returns the jwt.Keyfunc for one validation.
func (ks *keySet) keyfunc(ctx context.Context) jwt.Keyfunc {
	inner := ks.kf.KeyfuncCtx(ctx)
	return func(t *jwt.Token) (any, error) {
		kid, hasKID := t.Header[jwkset.HeaderKID].(string)
		if hasKID {
			_, err := ks.cache.KeyRead(ctx, kid)
			if errors.Is(err, jwkset.ErrKeyNotFound) && !ks.unknownKID.Allow() {
				return nil, fmt.Errorf("%w %q (key set refetch rate-limited)", errUnknownKID, kid)
			}
		}
		key, err := inner(t)
		if err != nil {
			if errors.Is(err, jwkset.ErrKeyNotFound) {
				return nil, fmt.Errorf("%w %q: %w", errUnknownKID, kid, err)
			}
			return nil, err
		}
		return key, nil
	}
}

// newKeySet starts the background-refreshed key set of jwksURI. The first fetch may fail (the
// issuer may be down at start); the set is then empty until a refresh works.
func (v *Validator) newKeySet(ctx context.Context, ri *remoteIssuer, jwksURI string) (*keySet, error) {
	name := ri.cfg.Name
	client := &http.Client{
		Timeout: v.opts.HTTPTimeout,
		Transport: observingTransport{
			base: transportOf(v.opts.HTTPClient),
			// Every fetch of the key set, background or on unknown kid, lands in the status.
			observe: func(err error) {
				ri.setStatus(func(s *IssuerStatus) {
					s.CheckedAt = time.Now().UTC()
					if err != nil {
						s.Error = "jwks: " + err.Error()
					} else {
						s.Error = ""
					}
				})
			},
		},
	}
	cache, err := jwkset.NewStorageFromHTTP(jwksURI, jwkset.HTTPClientStorageOptions{
		Client:                    client,
		Ctx:                       ctx,
		HTTPTimeout:               v.opts.HTTPTimeout,
		NoErrorReturnFirstHTTPReq: true,
		RefreshInterval:           v.opts.RefreshInterval,
		RefreshErrorHandler: func(ctx context.Context, err error) {
			// Keys already known stay in the storage: jwkset only replaces them on success.
			v.log.WarnContext(ctx, "trusted issuer key set fetch failed", "issuer", name, "jwks_uri", jwksURI, "error", err)
			ri.setStatus(func(s *IssuerStatus) { s.Error = "jwks: " + err.Error() })
		},
	})
	if err != nil {
		return nil, fmt.Errorf("key set %s: %w", jwksURI, err)
	}
	storage, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{jwksURI: cache},
		RateLimitWaitMax:  v.opts.HTTPTimeout, // also bounds the unknown-kid refetch
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 0),
	})
	if err != nil {
		return nil, fmt.Errorf("key set %s: %w", jwksURI, err)
	}
	kf, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: storage})
	if err != nil {
		return nil, fmt.Errorf("key set %s: %w", jwksURI, err)
	}
	return &keySet{
		kf:         kf,
		cache:      cache,
		unknownKID: rate.NewLimiter(rate.Every(v.opts.UnknownKIDInterval), 1),
	}, nil
}

// discover reads the issuer's metadata and returns its jwks_uri.
func (v *Validator) discover(ctx context.Context, cfg IssuerConfig) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, v.opts.HTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.metadataURL(), nil)
	if err != nil {
		return "", fmt.Errorf("metadata: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.opts.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("metadata: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("metadata: %s answered %s", cfg.metadataURL(), resp.Status)
	}
	var md struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&md); err != nil {
		return "", fmt.Errorf("metadata: %w", err)
	}
	// OpenID Connect Discovery §4.3: the metadata must be for exactly this issuer, or tokens
	// would be checked against someone else's keys.
	if md.Issuer != cfg.Issuer {
		return "", fmt.Errorf("metadata: issuer is %q, want %q", md.Issuer, cfg.Issuer)
	}
	if md.JWKSURI == "" {
		return "", errors.New("metadata: no jwks_uri")
	}
	u, err := url.Parse(md.JWKSURI)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("metadata: jwks_uri %q is not an http(s) URL", md.JWKSURI)
	}
	return md.JWKSURI, nil
}

// start discovers the issuer and builds its key set; it reports whether that worked.
func (v *Validator) start(ctx context.Context, ri *remoteIssuer) bool {
	jwksURI, err := v.discover(ctx, ri.cfg)
	if err == nil {
		var ks *keySet
		if ks, err = v.newKeySet(ctx, ri, jwksURI); err == nil {
			ri.keys.Store(ks)
		}
	}
	ri.setStatus(func(s *IssuerStatus) {
		s.CheckedAt = time.Now().UTC()
		s.JWKSURI = jwksURI
		if err != nil {
			s.Error = err.Error()
		}
	})
	return err == nil
}

// retry keeps trying to discover an issuer that failed at start, with backoff, until it works
// or ctx ends.
func (v *Validator) retry(ctx context.Context, ri *remoteIssuer) {
	wait := v.opts.DiscoveryRetryMin
	for attempt := 2; ; attempt++ {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if v.start(ctx, ri) {
			v.log.InfoContext(ctx, "trusted issuer is available", "issuer", ri.cfg.Name, "attempt", attempt)
			return
		}
		v.log.WarnContext(ctx, "trusted issuer still unavailable", "issuer", ri.cfg.Name,
			"error", ri.statusError(), "attempt", attempt, "next_in", wait)
		wait = min(wait*2, v.opts.DiscoveryRetryMax)
	}
}

func (ri *remoteIssuer) statusError() string {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	return ri.status.Error
}

// observingTransport reports the outcome of each round trip, so Status can say whether the last
// key set fetch worked (jwkset reports failures but not successes).
type observingTransport struct {
	base    http.RoundTripper
	observe func(error)
}

// RoundTrip implements http.RoundTripper.
func (t observingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	switch {
	case err != nil:
		t.observe(err)
	case resp.StatusCode != http.StatusOK:
		t.observe(fmt.Errorf("%s answered %s", req.URL.Redacted(), resp.Status))
	default:
		t.observe(nil)
	}
	return resp, err
}

func transportOf(c *http.Client) http.RoundTripper {
	if c.Transport != nil {
		return c.Transport
	}
	return http.DefaultTransport
}
