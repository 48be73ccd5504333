package resource

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenClaims are the claims Flowgate reads from an access token. It implements jwt.Claims
// itself rather than embedding jwt.RegisteredClaims: decoding exp/nbf/iat straight into
// float64 and aud into audience saves about a dozen allocations per token (see the benchmark).
// Claims with fixed names are struct fields, so decoding allocates only for what is present;
// claims whose name comes from configuration (a custom subject_claim or roles_claim, possibly
// a dotted path such as Keycloak's realm_access.roles) are picked out in a second pass, paid
// only by issuers that configure one.
type tokenClaims struct {
	Issuer            string          `json:"iss"`
	Subject           string          `json:"sub"`
	Audience          audience        `json:"aud"`
	Exp               float64         `json:"exp"` // 0: absent (a 1970 date is refused either way)
	Nbf               float64         `json:"nbf"`
	Iat               float64         `json:"iat"`
	ID                string          `json:"jti"`
	ClientID          string          `json:"client_id"`
	Grant             string          `json:"gty"`   // Flowgate's own tokens: the grant that issued them
	AZP               string          `json:"azp"`   // Entra v2, Keycloak: the client
	AppID             string          `json:"appid"` // Entra v1: the client
	Scope             claimList       `json:"scope"`
	Scp               claimList       `json:"scp"`
	Roles             claimList       `json:"roles"`
	OID               string          `json:"oid"`
	UPN               string          `json:"upn"`
	Email             string          `json:"email"`
	PreferredUsername string          `json:"preferred_username"`
	Cnf               json.RawMessage `json:"cnf"` // proof-of-possession confirmation (DPoP, mTLS)

	// exp, nbf and iat as jwt.NumericDate, set after decoding, so the jwt.Claims getters can
	// return pointers into the struct instead of allocating.
	exp, nbf, iat jwt.NumericDate

	// extraNames are claim names to pick out in the second pass; extra receives them.
	extraNames []string
	extra      map[string]json.RawMessage
}

var _ jwt.Claims = (*tokenClaims)(nil)

func numericDate(f float64) jwt.NumericDate {
	sec, frac := math.Modf(f)
	return jwt.NumericDate{Time: time.Unix(int64(sec), int64(frac*1e9)).Truncate(jwt.TimePrecision)}
}

func datePtr(f float64, d *jwt.NumericDate) *jwt.NumericDate {
	if f == 0 {
		return nil
	}
	return d
}

// GetExpirationTime implements jwt.Claims.
func (c *tokenClaims) GetExpirationTime() (*jwt.NumericDate, error) {
	return datePtr(c.Exp, &c.exp), nil
}

// GetNotBefore implements jwt.Claims.
func (c *tokenClaims) GetNotBefore() (*jwt.NumericDate, error) { return datePtr(c.Nbf, &c.nbf), nil }

// GetIssuedAt implements jwt.Claims.
func (c *tokenClaims) GetIssuedAt() (*jwt.NumericDate, error) { return datePtr(c.Iat, &c.iat), nil }

// GetIssuer implements jwt.Claims.
func (c *tokenClaims) GetIssuer() (string, error) { return c.Issuer, nil }

// GetSubject implements jwt.Claims.
func (c *tokenClaims) GetSubject() (string, error) { return c.Subject, nil }

// GetAudience implements jwt.Claims.
func (c *tokenClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings(c.Audience), nil
}

// UnmarshalJSON decodes the fixed claims, then the configured ones, if any.
func (c *tokenClaims) UnmarshalJSON(b []byte) error {
	type fixed tokenClaims // drops this method, so no recursion
	if err := json.Unmarshal(b, (*fixed)(c)); err != nil {
		return err
	}
	c.exp, c.nbf, c.iat = numericDate(c.Exp), numericDate(c.Nbf), numericDate(c.Iat)
	if len(c.extraNames) == 0 {
		return nil
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	c.extra = make(map[string]json.RawMessage, len(c.extraNames))
	for _, name := range c.extraNames {
		if v, ok := lookupPath(all, name); ok {
			c.extra[name] = v
		}
	}
	return nil
}

// lookupPath finds a claim by name, or by a dotted path into nested objects when no claim has
// the whole name (URL-shaped claim names such as "https://example.com/roles" contain dots).
func lookupPath(all map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	if v, ok := all[name]; ok {
		return v, true
	}
	head, rest, ok := strings.Cut(name, ".")
	if !ok {
		return nil, false
	}
	v, ok := all[head]
	if !ok {
		return nil, false
	}
	var inner map[string]json.RawMessage
	if json.Unmarshal(v, &inner) != nil {
		return nil, false
	}
	return lookupPath(inner, rest)
}

// extraString returns a configured claim that must be a string.
func (c *tokenClaims) extraString(name string) string {
	var s string
	if v, ok := c.extra[name]; ok && json.Unmarshal(v, &s) == nil {
		return s
	}
	return ""
}

// extraList returns a configured claim that is a space-separated string or an array.
func (c *tokenClaims) extraList(name string) []string {
	var l claimList
	if v, ok := c.extra[name]; ok && json.Unmarshal(v, &l) == nil {
		return l
	}
	return nil
}

// claimList is a claim that issuers send either as a space-separated string (RFC 8693 "scope")
// or as an array of strings (Entra "roles", Okta "scp").
type claimList []string

// UnmarshalJSON accepts a string, an array of strings, or null.
func (l *claimList) UnmarshalJSON(b []byte) error {
	if s, ok := plainString(b); ok {
		*l = strings.Fields(s)
		return nil
	}
	return unmarshalStrings(b, (*[]string)(l), true)
}

// audience is the aud claim: one string or an array (RFC 7519 §4.1.3). Unlike claimList a
// string is one value, never split.
type audience []string

// UnmarshalJSON accepts a string, an array of strings, or null.
func (a *audience) UnmarshalJSON(b []byte) error {
	if s, ok := plainString(b); ok {
		*a = []string{s}
		return nil
	}
	return unmarshalStrings(b, (*[]string)(a), false)
}

// plainString returns a JSON string literal without escapes, the common case, without a
// round trip through encoding/json.
func plainString(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' || bytes.IndexByte(b, '\\') >= 0 {
		return "", false
	}
	return string(b[1 : len(b)-1]), true
}

func unmarshalStrings(b []byte, out *[]string, split bool) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if split {
			*out = strings.Fields(s)
		} else {
			*out = []string{s}
		}
		return nil
	case len(b) > 0 && b[0] == '[':
		return json.Unmarshal(b, out)
	case string(b) == "null":
		*out = nil
		return nil
	}
	return errors.New("must be a string or an array of strings")
}

// errMalformed is returned by peekIssuer for anything that cannot be a JWS compact token.
var errMalformed = errors.New("not a JWT")

// peekIssuer returns the unverified iss of a compact JWS so Validate can pick the issuer whose
// keys and rules apply before the real parse. Nothing is trusted from it: the real parse
// checks iss again, exactly. It decodes into a stack buffer for tokens of ordinary size.
func peekIssuer(raw string) (string, error) {
	_, rest, ok := strings.Cut(raw, ".")
	if !ok {
		return "", errMalformed
	}
	payload, _, ok := strings.Cut(rest, ".")
	if !ok || payload == "" {
		return "", errMalformed
	}
	var buf [4096]byte
	dst := buf[:]
	if n := base64.RawURLEncoding.DecodedLen(len(payload)); n > len(buf) {
		dst = make([]byte, n)
	}
	n, err := base64.RawURLEncoding.Decode(dst, []byte(payload))
	if err != nil {
		return "", errMalformed
	}
	var head struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(dst[:n], &head); err != nil {
		return "", errMalformed
	}
	return head.Iss, nil
}
