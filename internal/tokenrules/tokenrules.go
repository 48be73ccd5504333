// Package tokenrules holds what every part of Flowgate that reads a JWS must agree on: the
// form a token must have before any JOSE library parses it (the one spelling that was signed,
// no critical header extensions), and how Flowgate's own access tokens record the grant that
// issued them, so the provider that signs them and the resource server that maps them to a
// caller tell a user from a client the same way.
package tokenrules

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// ErrForm is wrapped by every refusal of CheckCompact.
var ErrForm = errors.New("malformed token")

// CheckCompact refuses a compact JWS unless each of its three parts is the canonical base64url
// spelling of its bytes and its protected header names no critical extension.
//
// Base64url leaves the low bits of a part's last character unused, and decoders ignore them
// (and line breaks): without this check one signed token has several spellings that all
// verify, and a token is then not identified by its text. JOSE libraries differ on "crit"
// (golang-jwt ignores it; go-jose processes "b64"), and RFC 7515 §4.1.11 says a recipient
// must refuse what it does not understand: Flowgate understands no extension, so a header
// with "crit" (or the "b64" parameter, which only exists with it) is refused everywhere.
func CheckCompact(raw string) error {
	header, rest, ok := strings.Cut(raw, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.IndexByte(sig, '.') >= 0 {
		return fmt.Errorf("%w: a compact JWS is three base64url parts separated by dots", ErrForm)
	}
	for _, p := range [...]struct{ name, seg string }{{"header", header}, {"payload", payload}, {"signature", sig}} {
		if !canonical(p.seg) {
			return fmt.Errorf("%w: its %s is not in canonical base64url (unpadded, unused bits zero)", ErrForm, p.name)
		}
	}
	return checkHeader(header)
}

// canonical reports whether s is what base64.RawURLEncoding encodes some bytes to: only the
// alphabet, no padding or line breaks, a length that a whole number of bytes gives, and the
// bits of the last character that carry no data zero.
func canonical(s string) bool {
	if len(s)%4 == 1 {
		return false
	}
	last := 0
	for i := 0; i < len(s); i++ {
		if last = b64value(s[i]); last < 0 {
			return false
		}
	}
	switch len(s) % 4 {
	case 2: // 12 bits for one byte: the low 4 are unused
		return last&0x0f == 0
	case 3: // 18 bits for two bytes: the low 2 are unused
		return last&0x03 == 0
	}
	return true
}

// b64value is the 6-bit value of a base64url character, or -1.
func b64value(c byte) int {
	switch {
	case 'A' <= c && c <= 'Z':
		return int(c - 'A')
	case 'a' <= c && c <= 'z':
		return int(c-'a') + 26
	case '0' <= c && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}

// checkHeader refuses a protected header (canonical base64url) that is not a JSON object or
// that carries "crit" or "b64", whatever their value (null included).
func checkHeader(seg string) error {
	header, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return fmt.Errorf("%w: its header is not base64url", ErrForm)
	}
	var h struct {
		Crit json.RawMessage `json:"crit"`
		B64  json.RawMessage `json:"b64"`
	}
	if err := json.Unmarshal(header, &h); err != nil {
		return fmt.Errorf("%w: its header is not a JSON object", ErrForm)
	}
	switch {
	case h.Crit != nil:
		return fmt.Errorf("%w: its header names critical extensions (crit), and none is supported", ErrForm)
	case h.B64 != nil:
		return fmt.Errorf("%w: its header has b64 (unencoded payload), which is not supported", ErrForm)
	}
	return nil
}

// GrantClaim is the private claim in which Flowgate's access tokens record the grant that
// issued them.
const GrantClaim = "gty"

// The grants GrantClaim names, spelled as the OAuth grant types are.
const (
	GrantAuthorizationCode = string(oidc.GrantTypeCode)
	GrantRefreshToken      = string(oidc.GrantTypeRefreshToken)
	GrantClientCredentials = string(oidc.GrantTypeClientCredentials)
)

// ErrGrant is wrapped by ForClient's refusals.
var ErrGrant = errors.New("access token does not say whom it stands for")

// ForClient reports whether an access token of Flowgate's own provider stands for a client
// acting for itself (client credentials) rather than for a user, from the grant the token
// records: never from whether a user or a client of that name exists, since a username may
// equal a client id.
//
// Tokens minted before the grant was recorded have none. One whose sub differs from its
// client_id is a user's (a client-credentials token's sub is always its client id); one whose
// sub equals its client_id could be either and is refused: its holder gets a new token.
func ForClient(grant, sub, clientID string) (bool, error) {
	switch grant {
	case GrantClientCredentials:
		if sub != clientID {
			return false, fmt.Errorf("%w: a client-credentials token whose sub is not its client_id", ErrGrant)
		}
		return true, nil
	case GrantAuthorizationCode, GrantRefreshToken:
		return false, nil
	case "":
		if sub == clientID {
			return false, fmt.Errorf("%w: it has no %s claim and its sub is its client_id; request a new token", ErrGrant, GrantClaim)
		}
		return false, nil
	}
	return false, fmt.Errorf("%w: unknown grant %q in %s", ErrGrant, truncate(grant, 40), GrantClaim)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
