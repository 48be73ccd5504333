package authserver

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/flowgate/flowgate/internal/dpop"
	"github.com/flowgate/flowgate/internal/store"
)

// binding is what a token request asks its tokens to be bound to and
// for: the DPoP key (RFC 9449) and the audiences (RFC 8707).
type binding struct {
	// jkt is the thumbprint of the proof's key; "" without a proof.
	jkt string
	// aud is the token's audience: the resources asked for; empty means
	// Flowgate's own URL.
	aud []string
}

// detail is what the audit record of a token adds about its binding and
// audience (the key's thumbprint is public; it names which key).
func (b binding) detail() string {
	var d string
	if b.jkt != "" {
		d += "; DPoP-bound to " + b.jkt
	}
	if len(b.aud) > 0 {
		d += "; for " + truncate(strings.Join(b.aud, " "), 200)
	}
	return d
}

// DPoP is the proof checker the APIs share with the token endpoint: the
// same replay table and the same nonces.
func (s *Server) DPoP() *dpop.Verifier { return s.dpop }

// tokenProof checks the token request's DPoP proof for client c and
// returns its key's thumbprint ("" without a proof). A client registered
// with dpop must send a proof; any client may.
func (s *Server) tokenProof(ctx context.Context, c *store.Client) (string, error) {
	x := exchangeOf(ctx)
	if x.r == nil {
		return "", errors.New("token request without its HTTP request")
	}
	if s.dpop.Nonces != nil && x.w != nil {
		// Handed out on every answer, so a client always has a current one.
		x.w.Header().Set(dpop.NonceHeader, s.dpop.Nonces.Current())
	}
	proofs := x.r.Header.Values(dpop.Header)
	if len(proofs) == 0 {
		if c.DPoP {
			return "", oauthErr(&oidc.Error{ErrorType: dpop.CodeInvalidProof}, "this client must send a DPoP proof", http.StatusBadRequest)
		}
		return "", nil
	}
	p, err := s.dpop.Verify(ctx, proofs, dpop.Request{Method: http.MethodPost, URL: s.tokenURL})
	if err != nil {
		return "", s.dpopError(err)
	}
	return p.JKT, nil
}

// tokenResources checks the token request's resource parameters (RFC
// 8707) for client c; allowed, when not nil, limits them further (those
// of the authorization request).
func (s *Server) tokenResources(ctx context.Context, c *store.Client, allowed []string) ([]string, error) {
	var asked []string
	if r := exchangeOf(ctx).r; r != nil {
		asked = r.PostForm["resource"]
	}
	return s.resources(c, asked, allowed)
}

// dpopError is a refused proof as the token endpoint answers it: 400 with
// the RFC's code, and a fresh nonce when one was missing.
func (s *Server) dpopError(err error) error {
	var de *dpop.Error
	if !errors.As(err, &de) {
		return err
	}
	e := &oidc.Error{ErrorType: dpop.CodeInvalidProof}
	if de.Code == dpop.CodeUseNonce {
		e = &oidc.Error{ErrorType: dpop.CodeUseNonce}
	}
	return oauthErr(e, de.Description, http.StatusBadRequest)
}

// resources checks resource indicators against what the client may ask
// for (the issuer and its registered audiences) and, when allowed is not
// nil, against allowed. None asked: allowed (nil: Flowgate's own URL).
func (s *Server) resources(c *store.Client, asked, allowed []string) ([]string, error) {
	if len(asked) == 0 {
		// The authorization request's resources, else none: the token
		// is for Flowgate itself (mintAccess).
		return allowed, nil
	}
	var out []string
	for _, r := range asked {
		if err := s.checkResource(c, r); err != nil {
			return nil, err
		}
		if allowed != nil && !slices.Contains(allowed, r) {
			return nil, oauthErr(&oidc.Error{ErrorType: "invalid_target"}, "resource was not part of the authorization request", http.StatusBadRequest)
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// checkResource refuses a resource the client may not ask for.
func (s *Server) checkResource(c *store.Client, r string) error {
	u, err := url.Parse(r)
	if err != nil || !u.IsAbs() || u.Fragment != "" {
		return oauthErr(&oidc.Error{ErrorType: "invalid_target"}, "resource must be an absolute URI without a fragment", http.StatusBadRequest)
	}
	if r != s.issuer && !slices.Contains(c.Audiences, r) {
		return oauthErr(&oidc.Error{ErrorType: "invalid_target"}, "resource is not registered for this client", http.StatusBadRequest)
	}
	return nil
}
