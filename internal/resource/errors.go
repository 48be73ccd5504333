package resource

import (
	"net/http"
	"strings"
)

// Error codes used in WWW-Authenticate challenges and JSON error bodies. The first three are
// RFC 6750 §3.1; temporarily_unavailable is borrowed from RFC 6749 for the case where a token
// cannot be judged because something Flowgate depends on (the revocation store) is down.
const (
	CodeInvalidRequest         = "invalid_request"
	CodeInvalidToken           = "invalid_token"
	CodeInsufficientScope      = "insufficient_scope"
	CodeTemporarilyUnavailable = "temporarily_unavailable"
	// CodeUnauthorized is the JSON error of a request that carries no bearer token at all;
	// RFC 6750 §3.1 says such a challenge has no error code, but the JSON body needs one.
	CodeUnauthorized = "unauthorized"
)

// TokenError is why a request's token was refused. Description is written for the caller
// (it goes into the WWW-Authenticate header and the JSON body) and never contains the token;
// Err is the underlying cause, for logs only.
type TokenError struct {
	Code        string // one of the Code* constants
	Description string // which check failed, safe to show to the caller
	Scope       string // the scope that was needed, for insufficient_scope
	Nonce       string // a fresh DPoP nonce, for use_dpop_nonce
	Err         error  // cause, may be nil
	// DPoP: the request used the DPoP scheme, so the challenge is a DPoP one (RFC 9449 §7.1).
	DPoP bool
}

// Error implements error.
func (e *TokenError) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Description + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Description
}

// Unwrap returns the cause.
func (e *TokenError) Unwrap() error { return e.Err }

// Status is the HTTP status code the error is answered with.
func (e *TokenError) Status() int {
	switch e.Code {
	case CodeInvalidRequest:
		return http.StatusBadRequest
	case CodeInsufficientScope:
		return http.StatusForbidden
	case CodeTemporarilyUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusUnauthorized
	}
}

func invalidToken(desc string, cause error) *TokenError {
	return &TokenError{Code: CodeInvalidToken, Description: desc, Err: cause}
}

// quoteSafe makes s fit an RFC 6750 error_description / scope quoted-string: the grammar allows
// %x20-21 / %x23-5B / %x5D-7E only, so '"', '\' and anything non-ASCII becomes '?'. Values
// echoed from a token are attacker-controlled, so they are also cut to a sane length.
func quoteSafe(s string, max int) string {
	if len(s) > max {
		s = s[:max] + "..."
	}
	ok := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b.WriteByte('?')
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
