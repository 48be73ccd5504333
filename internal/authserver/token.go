package authserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/credential"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/tokenrules"
)

// accessClaims are the RFC 9068 claims of our access tokens.
type accessClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience audience `json:"aud"`
	ClientID string   `json:"client_id"`
	Grant    string   `json:"gty"` // tokenrules.GrantClaim: whom the token stands for
	Scope    string   `json:"scope,omitempty"`
	Exp      int64    `json:"exp"`
	Iat      int64    `json:"iat"`
	JTI      string   `json:"jti"`
	AuthTime int64    `json:"auth_time,omitempty"`
	Cnf      *cnf     `json:"cnf,omitempty"`
}

// audience is an aud claim: one value is written as a string (what
// every reader of a token for Flowgate itself has seen so far), several
// as a list. golang-jwt's ClaimStrings reads both.
type audience []string

// MarshalJSON is json.Marshaler's.
func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON is json.Unmarshaler's.
func (a *audience) UnmarshalJSON(b []byte) error {
	var cs jwt.ClaimStrings
	if err := cs.UnmarshalJSON(b); err != nil {
		return err
	}
	*a = audience(cs)
	return nil
}

// cnf is the confirmation claim of a DPoP-bound token (RFC 9449 §6.1).
type cnf struct {
	JKT string `json:"jkt"`
}

// jkt is the thumbprint the token is bound to, "" when unbound.
func (c *accessClaims) jkt() string {
	if c.Cnf == nil {
		return ""
	}
	return c.Cnf.JKT
}

// tokenType is what token_type says for a token bound to jkt, or not.
func tokenType(jkt string) string {
	if jkt != "" {
		return "DPoP"
	}
	return "Bearer"
}

// tokenResponse is RFC 6749 §5.1 plus the OIDC id_token.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
}

// mintAccess signs an access token. grant is the grant that issued it
// (a tokenrules.Grant*), which is how its readers tell a client's own token
// from a user's. jti may be preset: tokens of a refresh family name it
// (familyJTI), so that revoking the family refuses them.
func (s *Server) mintAccess(sub, clientID, grant string, scopes []string, jti string, authTime time.Time, now time.Time, b binding) (string, time.Time, error) {
	if jti == "" {
		jti = randomToken(16)
	}
	exp := now.Add(s.opts.Auth.AccessTokenTTL)
	aud := audience(b.aud)
	if len(aud) == 0 {
		aud = audience{s.issuer}
	}
	c := accessClaims{
		Issuer: s.issuer, Subject: sub, Audience: aud, ClientID: clientID, Grant: grant,
		Scope: strings.Join(scopes, " "), Exp: exp.Unix(), Iat: now.Unix(), JTI: jti,
	}
	if b.jkt != "" {
		c.Cnf = &cnf{JKT: b.jkt}
	}
	if !authTime.IsZero() {
		c.AuthTime = authTime.Unix()
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", time.Time{}, err
	}
	tok, err := signJWT(s.keys.state.Load().access, payload)
	return tok, exp, err
}

// signJWT makes the compact JWS header.payload.signature with key's
// precomputed header; golang-jwt signs (for ES256, r || s as RFC 7518 §3.4
// wants).
func signJWT(key *signingKey, payload []byte) (string, error) {
	method := jwt.GetSigningMethod(key.alg)
	if method == nil {
		return "", fmt.Errorf("sign token: unsupported algorithm %q", key.alg)
	}
	input := key.header + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig, err := method.Sign(input, key.priv)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// clientCredentials is the client_credentials grant; requested is the
// parsed scope parameter.
func (s *Server) clientCredentials(ctx context.Context, c *store.Client, requested []string) (*tokenResponse, error) {
	if c.TokenEndpointAuthMethod == string(oidc.AuthMethodNone) {
		return nil, oauthErr(oidc.ErrUnauthorizedClient(), "public clients cannot use client_credentials", http.StatusBadRequest)
	}
	var scopes []string
	if len(requested) > 0 {
		scopes = requested
		for _, sc := range scopes {
			if !slices.Contains(c.Scopes, sc) || sc == "openid" || sc == "offline_access" {
				s.audit(ctx, nil, store.AuditEvent{Event: audit.TokenIssued, Client: c.ID, Outcome: audit.OutcomeFailure, Detail: "scope not allowed: " + truncate(sc, 64)})
				return nil, oauthErr(oidc.ErrInvalidScope(), "scope not allowed for this client", http.StatusBadRequest)
			}
		}
	} else {
		for _, sc := range c.Scopes {
			switch sc {
			case "openid", "offline_access", "profile", "email":
			default:
				scopes = append(scopes, sc)
			}
		}
	}
	var b binding
	var err error
	if b.jkt, err = s.tokenProof(ctx, c); err != nil {
		return nil, err
	}
	if b.aud, err = s.tokenResources(ctx, c, nil); err != nil {
		return nil, err
	}
	now := s.now()
	at, _, err := s.mintAccess(c.ID, c.ID, tokenrules.GrantClientCredentials, scopes, "", time.Time{}, now, b)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, nil, store.AuditEvent{Event: audit.TokenIssued, Client: c.ID, Outcome: audit.OutcomeSuccess, Detail: string(oidc.GrantTypeClientCredentials) + b.detail()})
	s.opts.Metrics.TokenIssued(string(oidc.GrantTypeClientCredentials))
	return &tokenResponse{AccessToken: at, TokenType: tokenType(b.jkt), ExpiresIn: int64(s.opts.Auth.AccessTokenTTL / time.Second), Scope: strings.Join(scopes, " ")}, nil
}

// codeExchange is the authorization_code grant.
func (s *Server) codeExchange(ctx context.Context, c *store.Client, req *oidc.AccessTokenRequest) (*tokenResponse, error) {
	code := req.Code
	if code == "" {
		return nil, errInvalidRequest("code is required")
	}
	// The proof before the code is consumed: a refused proof leaves the
	// code usable with a good one.
	var b binding
	var err error
	if b.jkt, err = s.tokenProof(ctx, c); err != nil {
		return nil, err
	}
	now := s.now()
	var ac store.AuthCode
	ac, err = s.st.ConsumeAuthCode(ctx, hashToken(code), now)
	switch {
	case errors.Is(err, store.ErrReused):
		// RFC 6749 §4.1.2: a code used twice was probably stolen; what
		// the first use issued is revoked.
		s.revokeCodeTokens(ctx, ac)
		s.audit(ctx, nil, store.AuditEvent{Event: audit.CodeReused, User: ac.User, Client: c.ID, Outcome: audit.OutcomeFailure, Detail: "authorization code used twice; tokens revoked"})
		return nil, errInvalidGrant("authorization code already used")
	case errors.Is(err, store.ErrNotFound):
		return nil, errInvalidGrant("authorization code is invalid or expired")
	case err != nil:
		return nil, err
	}
	if ac.ClientID != c.ID {
		return nil, errInvalidGrant("authorization code was issued to another client")
	}
	if req.RedirectURI != ac.RedirectURI {
		return nil, errInvalidGrant("redirect_uri does not match the authorization request")
	}
	if ac.DPoPJKT != "" && subtle.ConstantTimeCompare([]byte(b.jkt), []byte(ac.DPoPJKT)) != 1 {
		s.audit(ctx, nil, store.AuditEvent{Event: audit.TokenIssued, User: ac.User, Client: c.ID, Outcome: audit.OutcomeFailure, Detail: "authorization code bound to another DPoP key (dpop_jkt)"})
		return nil, errInvalidGrant("the authorization code is bound to a DPoP key (dpop_jkt): send a proof made with that key")
	}
	verifier := req.CodeVerifier
	switch {
	case ac.CodeChallenge == "" && verifier != "":
		return nil, errInvalidGrant("code_verifier without code_challenge")
	case ac.CodeChallenge != "" && verifier == "":
		return nil, errInvalidGrant("code_verifier is required")
	case ac.CodeChallenge != "":
		sum := sha256.Sum256([]byte(verifier))
		if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(ac.CodeChallenge)) != 1 {
			return nil, errInvalidGrant("code_verifier does not match code_challenge")
		}
	}
	if b.aud, err = s.tokenResources(ctx, c, ac.Resource); err != nil {
		return nil, err
	}
	user, err := s.st.GetUser(ctx, ac.User)
	if err != nil || user.Disabled {
		return nil, errInvalidGrant("the user is unknown or disabled")
	}
	resp, err := s.issueUserTokens(ctx, c, &user, ac.Scopes, ac.AccessJTI, ac.FamilyID, ac.Nonce, ac.AuthTime, ac.AMR, now, true, b)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, nil, store.AuditEvent{Event: audit.TokenIssued, User: user.Username, Client: c.ID, Outcome: audit.OutcomeSuccess, Detail: string(oidc.GrantTypeCode) + b.detail()})
	s.opts.Metrics.TokenIssued(string(oidc.GrantTypeCode))
	return resp, nil
}

// revokeCodeTokens revokes everything the first exchange of a code led
// to: the refresh family and every access token issued in it.
func (s *Server) revokeCodeTokens(ctx context.Context, ac store.AuthCode) {
	if err := s.revokeFamily(ctx, ac.FamilyID); err != nil {
		s.logger.Error("revoking tokens of a reused code", "err", err)
	}
	// Codes issued before access-token jtis named their family carry a
	// plain jti; deny-list it by itself too.
	if err := s.revoked.deny(ctx, ac.AccessJTI, ac.UsedAt.Add(s.opts.Auth.AccessTokenTTL+time.Minute)); err != nil {
		s.logger.Error("revoking tokens of a reused code", "err", err)
	}
}

// Access tokens of a refresh family (those of authorization_code and
// refresh_token grants) have the jti "<family id>.<random>", so that a
// revoked family refuses them all with one deny-list row, "family:<id>",
// and issuing them writes nothing. Client-credentials tokens have no
// family and a plain jti. Neither part can contain '.' or ':' (base64url).
const familyDenyPrefix = "family:"

func familyJTI(family string) string { return family + "." + randomToken(16) }

// revokeFamily revokes every refresh token of a family and deny-lists
// every access token issued in it. The deny-list row lives one access-token
// lifetime (plus a margin for a refresh in flight): every access token of
// the family was issued before now, so none outlives it.
func (s *Server) revokeFamily(ctx context.Context, family string) error {
	if err := s.st.RevokeRefreshFamily(ctx, family); err != nil {
		return err
	}
	return s.denyFamilyAccess(ctx, family)
}

// denyFamilyAccess deny-lists the access tokens of a family whose refresh
// tokens are already revoked (the store does that itself on reuse).
func (s *Server) denyFamilyAccess(ctx context.Context, family string) error {
	if family == "" {
		return nil
	}
	return s.revoked.deny(ctx, familyDenyPrefix+family, s.now().Add(s.opts.Auth.AccessTokenTTL+time.Minute))
}

// accessRevoked reports whether an access token is deny-listed by its jti
// or by its family.
func (s *Server) accessRevoked(ctx context.Context, jti string) (bool, error) {
	revoked, err := s.st.AccessTokenRevoked(ctx, jti)
	if err != nil || revoked {
		return revoked, err
	}
	if family, _, ok := strings.Cut(jti, "."); ok && family != "" {
		return s.st.AccessTokenRevoked(ctx, familyDenyPrefix+family)
	}
	return false, nil
}

// issueUserTokens mints the access token, the ID token (scope openid) and a
// refresh token when one is allowed (refresh tokens on in auth, the grant
// registered for the client, scope offline_access). newFamily creates the refresh token
// (a code exchange, the grant the access token records); otherwise the
// caller already rotated it (a refresh).
func (s *Server) issueUserTokens(ctx context.Context, c *store.Client, u *store.User, scopes []string, jti, family, nonce string,
	authTime time.Time, amr []string, now time.Time, newFamily bool, b binding) (*tokenResponse, error) {
	grant := tokenrules.GrantRefreshToken
	if newFamily {
		grant = tokenrules.GrantAuthorizationCode
	}
	at, _, err := s.mintAccess(u.Username, c.ID, grant, scopes, jti, authTime, now, b)
	if err != nil {
		return nil, err
	}
	resp := &tokenResponse{AccessToken: at, TokenType: tokenType(b.jkt), ExpiresIn: int64(s.opts.Auth.AccessTokenTTL / time.Second), Scope: strings.Join(scopes, " ")}
	if slices.Contains(scopes, "openid") {
		if resp.IDToken, err = s.mintIDToken(c.ID, u, scopes, nonce, at, authTime, amr, now); err != nil {
			return nil, err
		}
	}
	if newFamily && s.refreshAllowed(c, scopes) {
		rt := randomToken(32)
		// A public client's refresh token is only as safe as the key it
		// is bound to (RFC 9449 §5); a confidential client's is already
		// bound to its credentials.
		var jkt string
		if c.TokenEndpointAuthMethod == string(oidc.AuthMethodNone) {
			jkt = b.jkt
		}
		err := s.st.CreateRefreshToken(ctx, store.RefreshToken{
			Hash: hashToken(rt), FamilyID: family, ClientID: c.ID, User: u.Username, Scopes: scopes,
			AuthTime: authTime, AMR: amr, CreatedAt: now, ExpiresAt: now.Add(s.opts.Auth.RefreshTokenTTL),
			DPoPJKT: jkt, Resources: b.aud,
		})
		if err != nil {
			return nil, err
		}
		resp.RefreshToken = rt
	}
	return resp, nil
}

func (s *Server) refreshAllowed(c *store.Client, scopes []string) bool {
	return s.opts.Auth.RefreshTokens && slices.Contains(c.GrantTypes, string(oidc.GrantTypeRefreshToken)) && slices.Contains(scopes, "offline_access")
}

// idClaims are the OIDC Core ID token claims we issue.
type idClaims struct {
	Issuer            string   `json:"iss"`
	Subject           string   `json:"sub"`
	Audience          string   `json:"aud"`
	AZP               string   `json:"azp"`
	Exp               int64    `json:"exp"`
	Iat               int64    `json:"iat"`
	AuthTime          int64    `json:"auth_time"`
	Nonce             string   `json:"nonce,omitempty"`
	AtHash            string   `json:"at_hash,omitempty"`
	AMR               []string `json:"amr,omitempty"`
	Name              string   `json:"name,omitempty"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
	Email             string   `json:"email,omitempty"`
	EmailVerified     *bool    `json:"email_verified,omitempty"`
}

func (s *Server) mintIDToken(clientID string, u *store.User, scopes []string, nonce, accessToken string, authTime time.Time, amr []string, now time.Time) (string, error) {
	key := s.keys.state.Load().id
	c := idClaims{
		Issuer: s.issuer, Subject: u.Username, Audience: clientID, AZP: clientID,
		Exp: now.Add(s.opts.Auth.IDTokenTTL).Unix(), Iat: now.Unix(), AuthTime: authTime.Unix(),
		Nonce: nonce, AtHash: atHash(key.alg, accessToken), AMR: amr,
	}
	fillProfile(&c, u, scopes)
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return signJWT(key, payload)
}

func fillProfile(c *idClaims, u *store.User, scopes []string) {
	if slices.Contains(scopes, "profile") {
		c.Name, c.PreferredUsername = u.Name, u.Username
	}
	if slices.Contains(scopes, "email") && u.Email != "" {
		c.Email = u.Email
		v := u.EmailVerified
		c.EmailVerified = &v
	}
}

// atHash is OIDC Core §3.1.3.6: the left half of the hash of the access
// token, with the ID token's algorithm's hash (SHA-256 for all of ours).
func atHash(_ string, accessToken string) string {
	h := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(h[:16])
}

// refresh is the refresh_token grant; narrowed is the parsed scope
// parameter.
//
// Rotation consumes the token, and a consumed token presented again
// revokes its family, so whatever can refuse the request is decided before
// the rotation, on the token as read: a refusal that is the caller's doing
// leaves the token usable. Per refusal:
//   - scope beyond the grant: invalid_scope, token kept;
//   - a token of another client, unknown, expired or revoked: invalid_grant
//     from the store, nothing consumed (another client's token stays its
//     holder's);
//   - a token already rotated: invalid_grant, family revoked (reuse);
//   - user unknown or disabled: invalid_grant, family revoked (the grant is
//     over, whoever asks);
//   - a failure of ours (reading the user, signing): server_error, token
//     kept, since the tokens are minted before the rotation.
func (s *Server) refresh(ctx context.Context, c *store.Client, raw string, narrowed []string) (*tokenResponse, error) {
	if raw == "" {
		return nil, errInvalidRequest("refresh_token is required")
	}
	if !s.opts.Auth.RefreshTokens {
		return nil, errInvalidGrant("refresh tokens are disabled")
	}
	var b binding
	var err error
	if b.jkt, err = s.tokenProof(ctx, c); err != nil {
		return nil, err
	}
	if b.aud, err = s.tokenResources(ctx, c, nil); err != nil {
		return nil, err
	}
	now := s.now()
	hash := hashToken(raw)
	old, err := s.st.GetRefreshToken(ctx, hash)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	var resp *tokenResponse
	if err == nil && old.ClientID == c.ID && !old.Revoked && old.UsedAt.IsZero() && old.ExpiresAt.After(now) {
		if resp, err = s.refreshResponse(ctx, c, &old, narrowed, now, b); err != nil {
			return nil, err
		}
	}
	// A token that was not live when read is left to the rotation to
	// refuse: the store tells reuse (and revokes the family) from the rest.
	newRT := randomToken(32)
	next, err := s.st.RotateRefreshToken(ctx, c.ID, hash, hashToken(newRT), now, now.Add(s.opts.Auth.RefreshTokenTTL))
	switch {
	case errors.Is(err, store.ErrReused):
		// The store has revoked the family's refresh tokens; its access
		// tokens go too.
		if err := s.denyFamilyAccess(ctx, next.FamilyID); err != nil {
			s.logger.Error("revoking access tokens of a reused refresh token", "err", err)
		}
		s.audit(ctx, nil, store.AuditEvent{Event: audit.RefreshTokenReused, User: next.User, Client: c.ID, Outcome: audit.OutcomeFailure, Detail: "rotated refresh token presented again; family revoked"})
		return nil, errInvalidGrant("refresh token already used")
	case errors.Is(err, store.ErrNotFound):
		s.audit(ctx, nil, store.AuditEvent{Event: audit.TokenRefreshed, Client: c.ID, Outcome: audit.OutcomeFailure, Detail: "invalid, expired or revoked refresh token"})
		return nil, errInvalidGrant("refresh token is invalid, expired or revoked")
	case err != nil:
		return nil, err
	}
	if resp == nil {
		// Used, revoked and expired are final, so a token that was not
		// live when read cannot rotate.
		return nil, errors.New("refresh: a token that was not live when read was rotated")
	}
	resp.RefreshToken = newRT
	s.audit(ctx, nil, store.AuditEvent{Event: audit.TokenRefreshed, User: next.User, Client: c.ID, Outcome: audit.OutcomeSuccess})
	s.opts.Metrics.TokenIssued(string(oidc.GrantTypeRefreshToken))
	return resp, nil
}

// refreshResponse checks a refresh request against the live token rt and
// mints the tokens it answers with, all before rt is rotated (see refresh).
func (s *Server) refreshResponse(ctx context.Context, c *store.Client, rt *store.RefreshToken, narrowed []string, now time.Time, b binding) (*tokenResponse, error) {
	if rt.DPoPJKT != "" && b.jkt != rt.DPoPJKT {
		s.audit(ctx, nil, store.AuditEvent{Event: audit.TokenRefreshed, User: rt.User, Client: c.ID, Outcome: audit.OutcomeFailure, Detail: "refresh token bound to another DPoP key"})
		return nil, errInvalidGrant("the refresh token is bound to a DPoP key: send a proof made with that key")
	}
	if len(rt.Resources) > 0 {
		// The grant's resources (RFC 8707 §2.2): all of them when the
		// request names none, else only some of them.
		if b.aud == nil {
			b.aud = rt.Resources
		}
		for _, r := range b.aud {
			if !slices.Contains(rt.Resources, r) {
				s.audit(ctx, nil, store.AuditEvent{Event: audit.TokenRefreshed, User: rt.User, Client: c.ID, Outcome: audit.OutcomeFailure, Detail: "resource not in the grant: " + truncate(r, 128)})
				return nil, oauthErr(&oidc.Error{ErrorType: "invalid_target"}, "resource was not part of the original grant", http.StatusBadRequest)
			}
		}
	}
	scopes := rt.Scopes
	if len(narrowed) > 0 {
		for _, sc := range narrowed {
			if !slices.Contains(rt.Scopes, sc) {
				s.audit(ctx, nil, store.AuditEvent{Event: audit.TokenRefreshed, User: rt.User, Client: c.ID, Outcome: audit.OutcomeFailure, Detail: "scope not in the grant: " + truncate(sc, 64)})
				return nil, oauthErr(oidc.ErrInvalidScope(), "scope exceeds the original grant", http.StatusBadRequest)
			}
		}
		scopes = narrowed
	}
	user, err := s.st.GetUser(ctx, rt.User)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && user.Disabled):
		if err := s.revokeFamily(ctx, rt.FamilyID); err != nil {
			s.logger.Error("revoking the refresh family of a disabled user", "err", err)
		}
		s.audit(ctx, nil, store.AuditEvent{Event: audit.TokenRefreshed, User: rt.User, Client: c.ID, Outcome: audit.OutcomeFailure, Detail: "user unknown or disabled; family revoked"})
		return nil, errInvalidGrant("the user is unknown or disabled")
	case err != nil:
		return nil, err
	}
	return s.issueUserTokens(ctx, c, &user, scopes, familyJTI(rt.FamilyID), rt.FamilyID, "", rt.AuthTime, rt.AMR, now, false, b)
}

// authenticateClient applies the client's registered method to the
// credentials op parsed (Basic wins over the form, as in op). Every failure
// is the same invalid_client to the caller; the audit log says why. The
// client returned may be shared (see clientCache): it is read only.
func (s *Server) authenticateClient(ctx context.Context, h http.Header, cc *op.ClientCredentials) (*client, error) {
	c, err := s.clientOf(ctx, h, cc)
	if err != nil {
		return nil, err
	}
	// A browser says where the page calling is from. Every client's
	// allowed_origins get CORS answers (the preflight cannot know the
	// client), so the client is held to its own list here: a page of one
	// browser app cannot use another app's public client.
	if origin := h.Get("Origin"); origin != "" && origin != s.issuerOrigin() && !slices.Contains(c.c.AllowedOrigins, origin) {
		s.audit(ctx, nil, store.AuditEvent{Event: audit.ClientAuthFailure, Client: c.c.ID, Outcome: audit.OutcomeFailure,
			Detail: "request from origin " + truncate(origin, 128) + ", not one of the client's allowed_origins"})
		return nil, errInvalidClient("the client may not be used from this origin (its allowed_origins)")
	}
	return c, nil
}

// issuerOrigin is the scheme://host[:port] of the issuer URL.
func (s *Server) issuerOrigin() string {
	u, err := url.Parse(s.issuer)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// clientOf authenticates the client by its credentials.
func (s *Server) clientOf(ctx context.Context, h http.Header, cc *op.ClientCredentials) (*client, error) {
	fail := func(clientID, why string) (*client, error) {
		s.audit(ctx, nil, store.AuditEvent{Event: audit.ClientAuthFailure, Client: truncate(clientID, 128), Outcome: audit.OutcomeFailure, Detail: why})
		return nil, errInvalidClient("client authentication failed")
	}
	if cc == nil {
		return fail("", "no client authentication")
	}
	if cc.ClientSecret != "" {
		method := oidc.AuthMethodPost
		if a := h.Get("Authorization"); len(a) > 6 && strings.EqualFold(a[:6], "basic ") {
			method = oidc.AuthMethodBasic
		}
		return s.checkSecret(ctx, cc.ClientID, cc.ClientSecret, method, fail)
	}
	if at := cc.ClientAssertionType; at != "" || cc.ClientAssertion != "" {
		if at != oidc.ClientAssertionTypeJWTAssertion {
			return fail(cc.ClientID, "unsupported client_assertion_type")
		}
		return s.checkAssertion(ctx, cc.ClientID, cc.ClientAssertion, fail)
	}
	id := cc.ClientID
	if id == "" {
		return fail("", "no client authentication")
	}
	c, err := s.st.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fail(id, "unknown client")
	}
	if err != nil {
		return nil, err
	}
	if c.TokenEndpointAuthMethod != string(oidc.AuthMethodNone) {
		return fail(id, "confidential client sent no credentials")
	}
	return newClient(c), nil
}
func (s *Server) checkSecret(ctx context.Context, id, secret string, method oidc.AuthMethod, fail func(string, string) (*client, error)) (*client, error) {
	cl, err := s.clients.get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		// Spend the HMAC anyway so that unknown ids answer in the same time.
		credential.VerifyClientSecret(s.opts.Ring, secret, "hmac-sha256$x$00")
		return fail(id, "unknown client")
	}
	if err != nil {
		return nil, err
	}
	c := &cl.c
	if cl.AuthMethod() != method {
		return fail(id, "client is registered for "+c.TokenEndpointAuthMethod+", not "+string(method))
	}
	if !credential.VerifyClientSecret(s.opts.Ring, secret, c.SecretHash) {
		return fail(id, "wrong client secret")
	}
	return cl, nil
}
