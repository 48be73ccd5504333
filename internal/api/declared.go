package api

import (
	"context"
	"errors"
	"fmt"

	"github.com/flowgate/flowgate/internal/admin"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/store"
)

// ApplyDeclared writes the configuration's trusted_issuers and
// oauth_servers to the store at start, as docs/configuration.md says: created or updated
// by name, marked source "config"; entries the file does not name
// (created through the admin API, or removed from the file) are left
// alone. cfg must come from config.Load or Parse, which validated it.
func (a *API) ApplyDeclared(ctx context.Context, cfg *config.Config) error {
	for i, ti := range cfg.TrustedIssuers {
		t := admin.IssuerFromConfig(ti, store.SourceConfig)
		cur, err := a.st.GetTrustedIssuer(ctx, t.Name)
		switch {
		case err == nil:
			t.CreatedAt = cur.CreatedAt
			err = a.st.UpdateTrustedIssuer(ctx, t)
		case errors.Is(err, store.ErrNotFound):
			err = a.st.CreateTrustedIssuer(ctx, t)
		}
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("trusted_issuers[%d] %q: issuer %s is already trusted under another name (created through the admin API?): %w", i, ti.Name, ti.Issuer, err)
		}
		if err != nil {
			return fmt.Errorf("trusted_issuers[%d] %q: %w", i, ti.Name, err)
		}
	}
	for i, os := range cfg.OAuthServers {
		o := admin.OAuthServerFromConfig(os, store.SourceConfig)
		cur, err := a.st.GetOAuthServer(ctx, o.Name)
		switch {
		case err == nil:
			o.CreatedAt = cur.CreatedAt
			err = a.st.UpdateOAuthServer(ctx, o)
		case errors.Is(err, store.ErrNotFound):
			err = a.st.CreateOAuthServer(ctx, o)
		}
		if err != nil {
			return fmt.Errorf("oauth_servers[%d] %q: %w", i, os.Name, err)
		}
	}
	return nil
}
