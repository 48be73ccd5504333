package connectors

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"

	"golang.org/x/oauth2"

	"github.com/flowgate/flowgate/internal/egress"
)

// Kind classifies a failure by what the caller does about it; the flow
// steps map kinds to the status codes of docs/flows.md.
type Kind int

const (
	// KindOther is anything not classified below (step status -1).
	KindOther Kind = iota
	// KindInvalidGrant: the provider refused the code or refresh token
	// (revoked, expired, reused). Retrying cannot help: the user must log
	// in again (the vault marks the connection reconnect_required).
	KindInvalidGrant
	// KindUnreachable: no answer, a network error, or a 5xx from the
	// provider (oauth_user_login status -3). Worth retrying later.
	KindUnreachable
	// KindAccessDenied: the user or the provider declined (-2).
	KindAccessDenied
	// KindUnsupportedTokenType: the token is not a bearer token (-5).
	KindUnsupportedTokenType
	// KindConfig: the server entry cannot work (no token endpoint, no key
	// file…); fix the configuration (oauth_server_login -2).
	KindConfig
	// KindInvalidScope: the provider refused the requested scope.
	KindInvalidScope
)

func (k Kind) String() string {
	switch k {
	case KindInvalidGrant:
		return "invalid_grant"
	case KindUnreachable:
		return "unreachable"
	case KindAccessDenied:
		return "access_denied"
	case KindUnsupportedTokenType:
		return "unsupported_token_type"
	case KindConfig:
		return "configuration"
	case KindInvalidScope:
		return "invalid_scope"
	}
	return "other"
}

// Error is every failure this package returns. Its message never holds a
// token or a secret: provider error descriptions are kept, response bodies
// are not.
type Error struct {
	Kind Kind
	// Server is the OAuth server's name.
	Server string
	// Op is what was attempted: "discovery", "client_credentials",
	// "exchange", "refresh", "revoke".
	Op string
	// Code and Description are the provider's OAuth error, when it sent
	// one.
	Code        string
	Description string
	// Err is the underlying error, for logs.
	Err error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("oauth server %q: %s: %s", e.Server, e.Op, e.Kind)
	if e.Code != "" {
		msg += ": " + e.Code
		if e.Description != "" {
			msg += " (" + e.Description + ")"
		}
	} else if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of err, KindOther when err is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindOther
}

// classify turns what oauth2 or net/http returned into an *Error.
func (c *Client) classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		return err
	}
	e := &Error{Kind: KindOther, Server: c.srv.Name, Op: op, Err: err}
	var re *oauth2.RetrieveError
	var ue *url.Error
	var ne net.Error
	var denied *egress.DeniedError
	switch {
	case errors.As(err, &denied):
		// Retrying cannot help: the entry points where the egress
		// policy does not let Flowgate connect.
		e.Kind, e.Err = KindConfig, denied
	case errors.As(err, &re):
		e.Code, e.Description = re.ErrorCode, re.ErrorDescription
		// RetrieveError's own message holds the response body; keep only
		// the status for logs, since a misbehaving provider might echo a
		// token or a secret back.
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		e.Err = fmt.Errorf("provider answered HTTP %d", status)
		switch {
		case re.ErrorCode == "invalid_grant":
			e.Kind = KindInvalidGrant
		case re.ErrorCode == "access_denied":
			e.Kind = KindAccessDenied
		case re.ErrorCode == "invalid_scope":
			e.Kind = KindInvalidScope
		case re.ErrorCode == "unsupported_token_type":
			e.Kind = KindUnsupportedTokenType
		case re.ErrorCode == "" && status >= 500:
			e.Kind = KindUnreachable
		case re.ErrorCode == "temporarily_unavailable" || re.ErrorCode == "server_error":
			e.Kind = KindUnreachable
		}
	case errors.Is(err, context.DeadlineExceeded):
		e.Kind = KindUnreachable
	case errors.As(err, &ue), errors.As(err, &ne):
		e.Kind = KindUnreachable
	}
	return e
}
