package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/egress"
	"github.com/flowgate/flowgate/internal/resource"
	"github.com/flowgate/flowgate/internal/server"
	"github.com/flowgate/flowgate/internal/store"
)

// issuerReloadInterval is how soon a trusted issuer changed through the
// admin API, on this server or another one on the same database, is
// honoured.
const issuerReloadInterval = 5 * time.Second

// newValidator builds the bearer-token validator for Flowgate's APIs with
// its own issuer, whose keys and revocations come from the authorization
// server in process. Trusted issuers are added from the store by an
// issuerLoader; those that cannot be reached are reported on /readyz and
// retried, never fatal.
func (s *Server) newValidator(ctx context.Context, policy *egress.Policy) (*resource.Validator, error) {
	st := s.Store
	own := resource.OwnIssuer{
		Issuer:    s.Config.Server.PublicURL,
		Keys:      s.auth.Keys().Keyfunc,
		Revoked:   s.auth.Revoked,
		UserRoles: userRoles(st),
		// Through the authorization server's client cache (trusted for a second), like the
		// token endpoint's own client authentication: no database read per API call.
		ClientRoles: func(ctx context.Context, id string) ([]string, error) {
			roles, err := s.auth.ClientRoles(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("client %q: %w", id, resource.ErrUnknownPrincipal)
			}
			return roles, err
		},
	}
	opts := resource.Options{Logger: s.Logger, HTTPClient: policy.Client(10 * time.Second), DPoP: s.auth.DPoP()}
	if fed := s.federation; fed != nil {
		opts.LinkedUser = func(ctx context.Context, iss string, c resource.LinkClaims) (string, error) {
			return fed.LinkedUser(ctx, iss, c.Sub, c.OID)
		}
	}
	v, err := resource.NewValidator(ctx, own, nil, opts)
	if err != nil {
		return nil, err
	}
	s.http.AddReadinessCheck(server.ReadinessCheck{Name: "trusted_issuers", Check: func(context.Context) error {
		var down []string
		for _, is := range v.Status() {
			if !is.Ready {
				down = append(down, is.Name+": "+is.Error)
			}
		}
		if len(down) > 0 {
			// Reported, not required: one provider being down must not
			// take the whole service out of a load balancer.
			return errors.New(strings.Join(down, "; "))
		}
		return nil
	}})
	return v, nil
}

// userRoles reads a Flowgate user's roles; a disabled or deleted user's
// tokens stop working at once.
func userRoles(st store.Store) func(context.Context, string) ([]string, error) {
	return func(ctx context.Context, username string) ([]string, error) {
		u, err := st.GetUser(ctx, username)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("user %q: %w", username, resource.ErrUnknownPrincipal)
		}
		if err != nil {
			return nil, err
		}
		if u.Disabled {
			return nil, fmt.Errorf("user %q is disabled: %w", username, resource.ErrUnknownPrincipal)
		}
		return u.Roles, nil
	}
}

// issuerLoader gives the validator the trusted issuers in the store (the
// configuration's are written there at start), and again whenever they
// change. Only Run's reload loop uses it once serving has started.
type issuerLoader struct {
	st     store.Store
	v      *resource.Validator
	logger *slog.Logger
	last   []resource.IssuerConfig
}

// load reads the store's trusted issuers and hands them to the validator
// when they differ from what it has.
func (l *issuerLoader) load(ctx context.Context) error {
	var issuers []resource.IssuerConfig
	err := store.EachPage(ctx, l.st.ListTrustedIssuers, func(ti store.TrustedIssuer) {
		issuers = append(issuers, resource.IssuerConfig{
			Name: ti.Name, Issuer: ti.Issuer, MetadataURL: ti.MetadataURL, Audience: ti.Audience,
			SubjectClaim: ti.SubjectClaim, ScopeClaim: ti.ScopeClaim, RolesClaim: ti.RolesClaim, ScopeMap: ti.ScopeMap,
		})
	})
	if err != nil {
		return fmt.Errorf("reading trusted issuers: %w", err)
	}
	if l.last != nil && slices.EqualFunc(l.last, issuers, resource.IssuerConfig.Equal) {
		return nil
	}
	if err := l.v.SetIssuers(issuers); err != nil {
		return err
	}
	l.last = issuers
	for _, s := range l.v.Status() {
		if !s.Ready {
			l.logger.Warn("trusted issuer not ready; its tokens are refused until it is", "issuer", s.Name, "err", s.Error)
		}
	}
	return nil
}

// reload is load for the loop that runs while serving: a failure is logged
// and the validator keeps the issuers it has.
func (l *issuerLoader) reload(ctx context.Context) {
	if err := l.load(ctx); err != nil && ctx.Err() == nil {
		l.logger.Warn("reloading trusted issuers", "err", err)
	}
}
