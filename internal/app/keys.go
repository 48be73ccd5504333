package app

import (
	"context"

	"github.com/flowgate/flowgate/internal/authserver"
	"github.com/flowgate/flowgate/internal/store"
)

// RotateKey makes a new active signing key, audited as rotated by by:
// the access-token key (auth.signing_alg), or with idToken the ID-token
// key (RS256). The previous key stays published until every token it
// signed has expired. `flowgate keys rotate` and the management site's
// keys page both rotate here.
func (a *App) RotateKey(ctx context.Context, by string, idToken bool) (store.SigningKey, error) {
	purpose, alg := authserver.PurposeAccess, a.Config.Auth.SigningAlg
	if idToken {
		purpose, alg = authserver.PurposeID, "RS256"
	}
	if alg == "" {
		alg = "ES256"
	}
	return authserver.Rotate(ctx, a.Store, a.Audit, by, purpose, alg, authserver.MaxTokenTTL(a.Config.Auth))
}
