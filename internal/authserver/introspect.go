package authserver

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/dpop"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/tokenrules"
)

// parsedAccess is a verified access token of ours.
type parsedAccess struct {
	accessClaims
	// client: the token is a client's own (client credentials), as its
	// grant claim says; otherwise it stands for the user named by sub.
	client bool
}

// GetExpirationTime and the other getters make parsedAccess a jwt.Claims
// without the allocations of jwt.RegisteredClaims.
func (p *parsedAccess) GetExpirationTime() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(p.Exp, 0)), nil
}

// GetIssuedAt is part of jwt.Claims.
func (p *parsedAccess) GetIssuedAt() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(p.Iat, 0)), nil
}

// GetNotBefore is part of jwt.Claims.
func (p *parsedAccess) GetNotBefore() (*jwt.NumericDate, error) { return nil, nil }

// GetIssuer is part of jwt.Claims.
func (p *parsedAccess) GetIssuer() (string, error) { return p.Issuer, nil }

// GetSubject is part of jwt.Claims.
func (p *parsedAccess) GetSubject() (string, error) { return p.Subject, nil }

// GetAudience is part of jwt.Claims.
func (p *parsedAccess) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings(p.Audience), nil
}

var errNotOurs = errors.New("not a valid access token of this issuer")

// verifyAccess checks signature, typ, issuer and expiry (unless
// allowExpired) of one of our access tokens. It does not check revocation.
func (s *Server) verifyAccess(ctx context.Context, raw string, allowExpired bool) (*parsedAccess, error) {
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{"ES256", "RS256", "EdDSA"}), jwt.WithIssuer(s.issuer), jwt.WithExpirationRequired()}
	if allowExpired {
		opts = append(opts, jwt.WithoutClaimsValidation())
	}
	var p parsedAccess
	tok, err := s.parseOwn(ctx, raw, &p, opts...)
	if err != nil || !tok.Valid || p.JTI == "" || p.Issuer != s.issuer {
		return nil, errNotOurs
	}
	if typ, _ := tok.Header["typ"].(string); !strings.EqualFold(typ, "at+jwt") {
		return nil, errNotOurs
	}
	if p.client, err = tokenrules.ForClient(p.Grant, p.Subject, p.ClientID); err != nil {
		return nil, errNotOurs
	}
	return &p, nil
}

// parseOwn parses and verifies a JWT signed with one of our keys (an
// access token or an ID token); opts add the claim checks. Every token we
// are handed goes through here, so each is accepted only in the one
// spelling we signed and without extensions we do not understand.
func (s *Server) parseOwn(ctx context.Context, raw string, claims jwt.Claims, opts ...jwt.ParserOption) (*jwt.Token, error) {
	if err := tokenrules.CheckCompact(raw); err != nil {
		return nil, err
	}
	return jwt.NewParser(opts...).ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		pk, ok := s.keys.PublicKey(ctx, kid)
		if !ok {
			return nil, errNotOurs
		}
		return pk, nil
	})
}

// mayIntrospect reports whether client may learn about a token issued to
// tokenClient: its own tokens always, others' only with the role
// "introspect" (a resource server) or "admin". RFC 7662 §4 leaves it to the
// server; without this any client could read the subject and scopes of
// every other client's tokens.
func mayIntrospect(client *store.Client, tokenClient string) bool {
	return client.ID == tokenClient || slices.Contains(client.Roles, "introspect") || slices.Contains(client.Roles, "admin")
}

// introspect is RFC 7662 for an authenticated client. A token the client
// may not introspect (see mayIntrospect) is described as inactive, as an
// unknown one is, so that the answer tells nothing about it.
func (s *Server) introspect(ctx context.Context, client *store.Client, raw string) (any, error) {
	if raw == "" {
		return nil, errInvalidRequest("token is required")
	}
	inactive := map[string]bool{"active": false}
	if strings.Count(raw, ".") == 2 {
		p, err := s.verifyAccess(ctx, raw, false)
		if err != nil || !mayIntrospect(client, p.ClientID) {
			return inactive, nil
		}
		revoked, err := s.accessRevoked(ctx, p.JTI)
		if err != nil {
			return nil, err
		}
		if revoked {
			return inactive, nil
		}
		return introspection{
			Active: true, Scope: p.Scope, ClientID: p.ClientID, Sub: p.Subject, Aud: p.Audience, Iss: p.Issuer,
			Exp: p.Exp, Iat: p.Iat, JTI: p.JTI, TokenType: tokenType(p.jkt()), Username: username(p), Cnf: p.Cnf,
		}, nil
	}
	rt, err := s.st.GetRefreshToken(ctx, hashToken(raw))
	now := s.now()
	if err != nil || !mayIntrospect(client, rt.ClientID) || rt.Revoked || !rt.UsedAt.IsZero() || !rt.ExpiresAt.After(now) {
		return inactive, nil
	}
	return introspection{
		Active: true, Scope: strings.Join(rt.Scopes, " "), ClientID: rt.ClientID, Sub: rt.User, Iss: s.issuer,
		Exp: rt.ExpiresAt.Unix(), Iat: rt.CreatedAt.Unix(), TokenType: "refresh_token", Username: rt.User,
	}, nil
}

// username is the user an access token stands for, "" for a client's own.
func username(p *parsedAccess) string {
	if p.client {
		return ""
	}
	return p.Subject
}

type introspection struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Username  string   `json:"username,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	Aud       audience `json:"aud,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	JTI       string   `json:"jti,omitempty"`
	// Cnf names the key a DPoP-bound token is bound to (RFC 9449 §6.2).
	Cnf *cnf `json:"cnf,omitempty"`
}

// revoke is RFC 7009: an unknown or foreign token is not an error.
func (s *Server) revoke(ctx context.Context, client *store.Client, raw string) error {
	if raw == "" {
		return errInvalidRequest("token is required")
	}
	if strings.Count(raw, ".") == 2 {
		p, err := s.verifyAccess(ctx, raw, true)
		if err == nil && p.ClientID == client.ID && time.Unix(p.Exp, 0).After(s.now()) {
			if err := s.revoked.deny(ctx, p.JTI, time.Unix(p.Exp, 0).Add(time.Minute)); err != nil {
				return err
			}
			s.audit(ctx, nil, store.AuditEvent{Event: audit.TokenRevoked, User: username(p), Client: client.ID, Outcome: audit.OutcomeSuccess, Detail: "access token"})
		}
		return nil
	}
	rt, err := s.st.GetRefreshToken(ctx, hashToken(raw))
	if err == nil && rt.ClientID == client.ID {
		// RFC 7009 §2.1: the access tokens of the same grant go too.
		if err := s.revokeFamily(ctx, rt.FamilyID); err != nil {
			return err
		}
		s.audit(ctx, nil, store.AuditEvent{Event: audit.TokenRevoked, User: rt.User, Client: client.ID, Outcome: audit.OutcomeSuccess, Detail: "refresh token family"})
	}
	return nil
}

// userinfo is OIDC Core §5.3; op has found the bearer token.
func (s *Server) userinfo(ctx context.Context, raw string) (any, error) {
	invalid := oauthErr(&oidc.Error{ErrorType: "invalid_token"}, "", http.StatusUnauthorized)
	p, err := s.verifyAccess(ctx, raw, false)
	if err != nil {
		return nil, invalid
	}
	if revoked, err := s.accessRevoked(ctx, p.JTI); err != nil {
		return nil, err
	} else if revoked {
		return nil, invalid
	}
	if err := s.checkSender(ctx, raw, p.jkt()); err != nil {
		return nil, err
	}
	scopes := strings.Fields(p.Scope)
	if !slices.Contains(scopes, "openid") || p.client {
		return nil, oauthErr(&oidc.Error{ErrorType: "insufficient_scope"}, "", http.StatusForbidden)
	}
	u, err := s.st.GetUser(ctx, p.Subject)
	if err != nil || u.Disabled {
		return nil, invalid
	}
	var c idClaims
	fillProfile(&c, &u, scopes)
	return userinfoResponse{Sub: u.Username, Name: c.Name, PreferredUsername: c.PreferredUsername, Email: c.Email, EmailVerified: c.EmailVerified}, nil
}

type userinfoResponse struct {
	Sub               string `json:"sub"`
	Name              string `json:"name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Email             string `json:"email,omitempty"`
	EmailVerified     *bool  `json:"email_verified,omitempty"`
}

// checkSender applies RFC 9449 §7 to a token presented at userinfo: a
// token bound to a key (jkt) is taken only with the DPoP scheme and a
// proof made with that key for this request, carrying the token's hash; a
// bearer token only with the Bearer scheme.
func (s *Server) checkSender(ctx context.Context, raw, jkt string) error {
	x := exchangeOf(ctx)
	if !x.dpopScheme {
		if jkt != "" {
			return oauthErr(&oidc.Error{ErrorType: "invalid_token"}, "the token is bound to a DPoP key: send it with the DPoP scheme and a proof", http.StatusUnauthorized)
		}
		return nil
	}
	if jkt == "" {
		return oauthErr(&oidc.Error{ErrorType: "invalid_token"}, "the token is not DPoP-bound: send it as Bearer", http.StatusUnauthorized)
	}
	if x.r == nil {
		return errors.New("userinfo without its HTTP request")
	}
	p, err := s.dpop.Verify(ctx, x.r.Header.Values(dpop.Header), dpop.Request{Method: x.r.Method, URL: s.issuer + PathUserinfo, AccessToken: raw})
	var de *dpop.Error
	switch {
	case errors.As(err, &de):
		if de.Nonce != "" && x.w != nil {
			x.w.Header().Set(dpop.NonceHeader, de.Nonce)
		}
		e := &oidc.Error{ErrorType: dpop.CodeInvalidProof}
		if de.Code == dpop.CodeUseNonce {
			e = &oidc.Error{ErrorType: dpop.CodeUseNonce}
		}
		return oauthErr(e, de.Description, http.StatusUnauthorized)
	case err != nil:
		return err
	case p.JKT != jkt:
		return oauthErr(&oidc.Error{ErrorType: dpop.CodeInvalidProof}, "the DPoP proof's key is not the one the token is bound to", http.StatusUnauthorized)
	}
	return nil
}
