package resource

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/dpop"
)

// Middleware validates the request's bearer token and calls next with the Principal in the
// request context (see PrincipalFrom). Failures are answered as RFC 6750 §3 says: 401 with a
// WWW-Authenticate challenge naming the failed check, a bare challenge when there is no token
// at all, and a JSON body {"error", "error_description"} in every case.
func (v *Validator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, isDPoP, terr := bearerToken(r)
		if terr == nil {
			var p *Principal
			var err error
			if isDPoP {
				p, err = v.ValidateDPoP(r.Context(), raw, r.Header.Values(dpop.Header), r.Method, v.own.Issuer+r.URL.EscapedPath())
			} else {
				p, err = v.Validate(r.Context(), raw)
			}
			if err == nil {
				next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
				return
			}
			if !errors.As(err, &terr) {
				terr = &TokenError{Code: CodeTemporarilyUnavailable, Description: "token cannot be checked right now", Err: err}
			}
			terr.DPoP = isDPoP
		}
		// Never the token itself: the cause names at most a kid, a claim or an issuer. A request
		// without a token is routine (browsers, probes), so it is logged at debug level only.
		level := slog.LevelInfo
		if terr.Code == CodeUnauthorized {
			level = slog.LevelDebug
		}
		v.log.Log(r.Context(), level, "bearer token refused",
			"code", terr.Code, "reason", terr.Description, "cause", terr.Err,
			"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		v.WriteTokenError(w, terr)
	})
}

// RequireScope passes the request to next only if the principal's token granted scope;
// otherwise it answers 403 insufficient_scope naming the scope. It must run inside Middleware.
func (v *Validator) RequireScope(scope string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := PrincipalFrom(r.Context())
		switch {
		case !ok:
			v.WriteTokenError(w, errNoToken())
		case !p.HasScope(scope):
			v.WriteTokenError(w, &TokenError{
				Code:        CodeInsufficientScope,
				Description: "the token does not grant scope " + scope,
				Scope:       scope,
			})
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// errNoToken is the answer to a request without a bearer token.
func errNoToken() *TokenError {
	return &TokenError{Code: CodeUnauthorized, Description: "this API requires a bearer token (Authorization: Bearer <token>)"}
}

// bearerToken returns the token of an "Authorization: Bearer" or "Authorization: DPoP"
// header, and whether it came with the DPoP scheme.
func bearerToken(r *http.Request) (string, bool, *TokenError) {
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return "", false, errNoToken()
	case 1:
	default:
		return "", false, &TokenError{Code: CodeInvalidRequest, Description: "more than one Authorization header"}
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	token = strings.TrimSpace(token)
	isDPoP := strings.EqualFold(scheme, "DPoP")
	switch {
	case strings.EqualFold(scheme, "Bearer") || isDPoP:
		if token == "" {
			return "", isDPoP, &TokenError{Code: CodeInvalidRequest, Description: "empty access token", DPoP: isDPoP}
		}
		return token, isDPoP, nil
	default:
		// Basic and other schemes are not a bearer token: the caller gets the bare challenge.
		return "", false, errNoToken()
	}
}

// WriteTokenError answers a refused token: the status of e, a WWW-Authenticate challenge
// (bare when there was no token), and the JSON error body.
func (v *Validator) WriteTokenError(w http.ResponseWriter, e *TokenError) {
	status := e.Status()
	if status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusBadRequest {
		w.Header().Set("WWW-Authenticate", v.challenge(e))
	}
	if e.Nonce != "" {
		w.Header().Set(dpop.NonceHeader, e.Nonce)
	}
	WriteError(w, status, e.Code, e.Description)
}

// challenge builds the RFC 6750 §3 WWW-Authenticate value, or the DPoP one (RFC 9449 §7.1,
// with the proof algorithms accepted) when the request used the DPoP scheme or its proof failed.
func (v *Validator) challenge(e *TokenError) string {
	var b strings.Builder
	if e.DPoP || e.Code == dpop.CodeInvalidProof || e.Code == dpop.CodeUseNonce {
		b.WriteString(`DPoP algs="`)
		b.WriteString(strings.Join(dpop.AlgNames(), " "))
		b.WriteString(`", realm="`)
	} else {
		b.WriteString(`Bearer realm="`)
	}
	b.WriteString(quoteSafe(v.opts.Realm, 100))
	b.WriteByte('"')
	if e.Code == CodeUnauthorized {
		return b.String() // §3.1: no error information when no token was sent
	}
	b.WriteString(`, error="`)
	b.WriteString(e.Code)
	b.WriteString(`", error_description="`)
	b.WriteString(quoteSafe(e.Description, 400))
	b.WriteByte('"')
	if e.Scope != "" {
		b.WriteString(`, scope="`)
		b.WriteString(quoteSafe(e.Scope, 200))
		b.WriteByte('"')
	}
	return b.String()
}

// WriteError writes the JSON error body every Flowgate API uses:
// {"error": code, "error_description": description}. It sets no challenge header.
func WriteError(w http.ResponseWriter, status int, code, description string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description,omitempty"`
	}{code, description})
}

// meResponse is the body of GET /api/v1/me.
type meResponse struct {
	Principal  string   `json:"principal"`
	Kind       Kind     `json:"kind"`
	Subject    string   `json:"subject"`
	Issuer     string   `json:"issuer"`
	IssuerName string   `json:"issuer_name"`
	ClientID   string   `json:"client_id,omitempty"`
	Roles      []string `json:"roles"`
	Scopes     []string `json:"scopes"`
	Audience   []string `json:"audience"`
	ExpiresAt  string   `json:"expires_at"`
}

// MeHandler serves GET /api/v1/me: the caller as Flowgate understands the token. It needs no
// scope, and must run inside Middleware.
func (v *Validator) MeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := PrincipalFrom(r.Context())
		if !ok {
			v.WriteTokenError(w, errNoToken())
			return
		}
		body := meResponse{
			Principal:  p.ID,
			Kind:       p.Kind,
			Subject:    p.Subject,
			Issuer:     p.Issuer,
			IssuerName: p.IssuerName,
			ClientID:   p.ClientID,
			Roles:      nonNil(p.Roles),
			Scopes:     nonNil(p.Scopes),
			Audience:   nonNil(p.Audience),
			ExpiresAt:  p.ExpiresAt.UTC().Format(time.RFC3339),
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(body)
	})
}

// nonNil keeps empty lists as [] rather than null in JSON.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
