package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/authserver"
	"github.com/flowgate/flowgate/internal/resource"
	"github.com/flowgate/flowgate/internal/server"
	"github.com/flowgate/flowgate/internal/store"
)

// newValidator builds the bearer-token validator for Flowgate's APIs: its
// own issuer, with keys and revocations from the authorization server in
// process, and the configured trusted issuers. Issuers that cannot be
// reached are reported on /readyz and retried, never fatal.
func newValidator(ctx context.Context, a *app.App, as *authserver.Server, srv *server.Server, logger *slog.Logger) (*resource.Validator, error) {
	own := resource.OwnIssuer{
		Issuer:    a.Config.Server.PublicURL,
		Keys:      as.Keys().Keyfunc,
		Revoked:   as.Revoked,
		UserRoles: userRoles(a.Store),
		ClientRoles: func(ctx context.Context, id string) ([]string, error) {
			c, err := a.Store.GetClient(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("client %q: %w", id, resource.ErrUnknownPrincipal)
			}
			return c.Roles, err
		},
	}
	var issuers []resource.IssuerConfig
	for _, ti := range a.Config.TrustedIssuers {
		issuers = append(issuers, resource.IssuerConfig{
			Name: ti.Name, Issuer: ti.Issuer, MetadataURL: ti.MetadataURL, Audience: ti.Audience,
			SubjectClaim: ti.SubjectClaim, ScopeClaim: ti.ScopeClaim, RolesClaim: ti.RolesClaim, ScopeMap: ti.ScopeMap,
		})
	}
	v, err := resource.NewValidator(ctx, own, issuers, resource.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	for _, st := range v.Status() {
		if !st.Ready {
			logger.Warn("trusted issuer not ready; its tokens are refused until it is", "issuer", st.Name, "err", st.Error)
		}
	}
	// Issuers are reported, not required: one provider being down must not
	// take the whole service out of a load balancer.
	for _, ti := range issuers {
		name := ti.Name
		srv.AddReadinessCheck(server.ReadinessCheck{Name: "issuer:" + name, Check: func(context.Context) error {
			for _, st := range v.Status() {
				if st.Name == name && !st.Ready {
					return errors.New(st.Error)
				}
			}
			return nil
		}})
	}
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
