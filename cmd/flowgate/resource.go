package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/authserver"
	"github.com/flowgate/flowgate/internal/egress"
	"github.com/flowgate/flowgate/internal/resource"
	"github.com/flowgate/flowgate/internal/server"
	"github.com/flowgate/flowgate/internal/store"
)

// newValidator builds the bearer-token validator for Flowgate's APIs with
// its own issuer, whose keys and revocations come from the authorization
// server in process. Trusted issuers are added by loadTrustedIssuers;
// those that cannot be reached are reported on /readyz and retried, never
// fatal.
func newValidator(ctx context.Context, a *app.App, as *authserver.Server, srv *server.Server, policy *egress.Policy, logger *slog.Logger) (*resource.Validator, error) {
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
	v, err := resource.NewValidator(ctx, own, nil, resource.Options{Logger: logger, HTTPClient: policy.Client(10 * time.Second)})
	if err != nil {
		return nil, err
	}
	srv.AddReadinessCheck(server.ReadinessCheck{Name: "trusted_issuers", Check: func(context.Context) error {
		var down []string
		for _, st := range v.Status() {
			if !st.Ready {
				down = append(down, st.Name+": "+st.Error)
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

// issuerReloadInterval is how soon a trusted issuer changed through the
// admin API, on this server or another one on the same database, is
// honoured.
const issuerReloadInterval = 5 * time.Second

// loadTrustedIssuers gives the validator the trusted issuers in the store
// (the configuration's are written there at start), and again whenever
// they change, until ctx ends.
func loadTrustedIssuers(ctx context.Context, st store.Store, v *resource.Validator, logger *slog.Logger) error {
	var last []resource.IssuerConfig
	load := func() error {
		var issuers []resource.IssuerConfig
		err := eachPage(ctx, st.ListTrustedIssuers, func(ti store.TrustedIssuer) {
			issuers = append(issuers, resource.IssuerConfig{
				Name: ti.Name, Issuer: ti.Issuer, MetadataURL: ti.MetadataURL, Audience: ti.Audience,
				SubjectClaim: ti.SubjectClaim, ScopeClaim: ti.ScopeClaim, RolesClaim: ti.RolesClaim, ScopeMap: ti.ScopeMap,
			})
		})
		if err != nil {
			return fmt.Errorf("reading trusted issuers: %w", err)
		}
		if last != nil && slices.EqualFunc(last, issuers, sameIssuer) {
			return nil
		}
		if err := v.SetIssuers(issuers); err != nil {
			return err
		}
		last = issuers
		for _, s := range v.Status() {
			if !s.Ready {
				logger.Warn("trusted issuer not ready; its tokens are refused until it is", "issuer", s.Name, "err", s.Error)
			}
		}
		return nil
	}
	if err := load(); err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(issuerReloadInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := load(); err != nil && ctx.Err() == nil {
					logger.Warn("reloading trusted issuers", "err", err)
				}
			}
		}
	}()
	return nil
}

func sameIssuer(a, b resource.IssuerConfig) bool {
	return a.Name == b.Name && a.Issuer == b.Issuer && a.MetadataURL == b.MetadataURL && a.Audience == b.Audience &&
		a.SubjectClaim == b.SubjectClaim && a.ScopeClaim == b.ScopeClaim && a.RolesClaim == b.RolesClaim &&
		maps.Equal(a.ScopeMap, b.ScopeMap)
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
