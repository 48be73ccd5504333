// Package admin holds the configuration changes an administrator makes at
// run time: OAuth clients, trusted issuers, outbound OAuth servers, the
// named secrets of flows and the API switches. The admin API and the commands call these functions, not the
// store, so that every way of making a change records it in the audit log
// with who made it (user accounts have the same in package account).
//
// Validation of the objects stays with the caller (the configuration's
// rules, applied by the API and the commands); what is here is the write,
// the secrets Flowgate generates, and the audit record. The configuration
// file applied at start writes the same tables directly and is not audited:
// the file is its own record.
package admin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/credential"
	"github.com/flowgate/flowgate/internal/keyring"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// Store is what this package needs of the store.
type Store interface {
	store.Clients
	store.Settings
	store.NamedSecrets
}

// Service makes the changes. Its fields are required but Audit, which may
// be nil (nothing recorded).
type Service struct {
	Store Store
	// Ring makes the keyed hashes client secrets are stored under.
	Ring  *keyring.Ring
	Audit audit.Recorder
}

// ErrNoSecret is rotating the secret of a client that authenticates
// without one.
var ErrNoSecret = errors.New("the client has no secret to rotate")

// NeedsSecret reports whether a client with this token endpoint auth method
// authenticates with a secret.
func NeedsSecret(method string) bool {
	return method == string(oidc.AuthMethodBasic) || method == string(oidc.AuthMethodPost)
}

// CreateClient registers c. A client that authenticates with a secret gets
// a generated one (256 random bits), returned here and stored only as a
// keyed hash; "" for other clients. It returns the record as stored.
// Audited as client.created; the secret never is.
func (s *Service) CreateClient(ctx context.Context, by string, c store.Client) (_ store.Client, secret string, err error) {
	c.SecretHash = ""
	if NeedsSecret(c.TokenEndpointAuthMethod) {
		if secret, c.SecretHash, err = credential.NewClientSecret(s.Ring); err != nil {
			return store.Client{}, "", err
		}
	}
	if err := s.Store.CreateClient(ctx, c); err != nil {
		return store.Client{}, "", err
	}
	audit.Change{Event: audit.ClientCreated, By: by, Detail: "client " + c.ID}.Record(ctx, s.Audit)
	return c, secret, nil
}

// UpdateClient writes next, the changed copy of the client's record. A
// client that becomes confidential gets a new secret (returned); one that
// stops using a secret loses its hash. It returns the record as stored.
// Audited as client.updated.
func (s *Service) UpdateClient(ctx context.Context, by string, next store.Client) (_ store.Client, secret string, err error) {
	switch {
	case !NeedsSecret(next.TokenEndpointAuthMethod):
		next.SecretHash = ""
	case next.SecretHash == "":
		if secret, next.SecretHash, err = credential.NewClientSecret(s.Ring); err != nil {
			return store.Client{}, "", err
		}
	}
	next.UpdatedAt = time.Now().UTC()
	if err := s.Store.UpdateClient(ctx, next); err != nil {
		return store.Client{}, "", err
	}
	detail := "client " + next.ID
	if secret != "" {
		detail += ": new secret"
	}
	audit.Change{Event: audit.ClientUpdated, By: by, Detail: detail}.Record(ctx, s.Audit)
	return next, secret, nil
}

// RemoveClient removes a client; store.ErrNotFound when there is none.
// Audited as client.removed.
func (s *Service) RemoveClient(ctx context.Context, by, id string) error {
	if err := s.Store.DeleteClient(ctx, id); err != nil {
		return err
	}
	audit.Change{Event: audit.ClientRemoved, By: by, Detail: "client " + id}.Record(ctx, s.Audit)
	return nil
}

// RotateClientSecret replaces a confidential client's secret at once (the
// old one stops working) and returns the new one. ErrNoSecret (wrapped)
// for a client without a secret. Audited as client.secret_rotated.
func (s *Service) RotateClientSecret(ctx context.Context, by, id string) (string, error) {
	c, err := s.Store.GetClient(ctx, id)
	if err != nil {
		return "", err
	}
	if !NeedsSecret(c.TokenEndpointAuthMethod) {
		return "", fmt.Errorf("%w: client %q uses token_endpoint_auth_method %s", ErrNoSecret, id, c.TokenEndpointAuthMethod)
	}
	secret, hash, err := credential.NewClientSecret(s.Ring)
	if err != nil {
		return "", err
	}
	c.SecretHash, c.UpdatedAt = hash, time.Now().UTC()
	if err := s.Store.UpdateClient(ctx, c); err != nil {
		return "", err
	}
	audit.Change{Event: audit.ClientSecretRotated, By: by, Detail: "client " + id}.Record(ctx, s.Audit)
	return secret, nil
}

// CreateIssuer adds a trusted issuer; audited as issuer.created.
func (s *Service) CreateIssuer(ctx context.Context, by string, t store.TrustedIssuer) error {
	if err := s.Store.CreateTrustedIssuer(ctx, t); err != nil {
		return err
	}
	audit.Change{Event: audit.IssuerCreated, By: by, Detail: "issuer " + t.Name + " (" + t.Issuer + ")"}.Record(ctx, s.Audit)
	return nil
}

// UpdateIssuer replaces a trusted issuer; audited as issuer.updated.
func (s *Service) UpdateIssuer(ctx context.Context, by string, t store.TrustedIssuer) error {
	if err := s.Store.UpdateTrustedIssuer(ctx, t); err != nil {
		return err
	}
	audit.Change{Event: audit.IssuerUpdated, By: by, Detail: "issuer " + t.Name + " (" + t.Issuer + ")"}.Record(ctx, s.Audit)
	return nil
}

// RemoveIssuer removes a trusted issuer; audited as issuer.removed.
func (s *Service) RemoveIssuer(ctx context.Context, by, name string) error {
	if err := s.Store.DeleteTrustedIssuer(ctx, name); err != nil {
		return err
	}
	audit.Change{Event: audit.IssuerRemoved, By: by, Detail: "issuer " + name}.Record(ctx, s.Audit)
	return nil
}

// CreateOAuthServer adds an outbound OAuth server; audited as
// oauth_server.created (never its client secret).
func (s *Service) CreateOAuthServer(ctx context.Context, by string, o store.OAuthServer) error {
	if err := s.Store.CreateOAuthServer(ctx, o); err != nil {
		return err
	}
	audit.Change{Event: audit.OAuthServerCreated, By: by, Detail: "oauth server " + o.Name}.Record(ctx, s.Audit)
	return nil
}

// UpdateOAuthServer replaces an OAuth server; audited as
// oauth_server.updated.
func (s *Service) UpdateOAuthServer(ctx context.Context, by string, o store.OAuthServer) error {
	if err := s.Store.UpdateOAuthServer(ctx, o); err != nil {
		return err
	}
	audit.Change{Event: audit.OAuthServerUpdated, By: by, Detail: "oauth server " + o.Name}.Record(ctx, s.Audit)
	return nil
}

// RemoveOAuthServer removes an OAuth server; audited as
// oauth_server.removed.
func (s *Service) RemoveOAuthServer(ctx context.Context, by, name string) error {
	if err := s.Store.DeleteOAuthServer(ctx, name); err != nil {
		return err
	}
	audit.Change{Event: audit.OAuthServerRemoved, By: by, Detail: "oauth server " + name}.Record(ctx, s.Audit)
	return nil
}

// SetSwitches writes the API switches in next, each as the setting
// keyPrefix+name, and records api_switch.changed ("name=on|off") for each
// whose value differs from cur. by "" records nothing: the configuration
// file's values written at start.
func (s *Service) SetSwitches(ctx context.Context, by, keyPrefix string, cur, next map[string]bool) error {
	for _, name := range slices.Sorted(maps.Keys(next)) {
		if err := s.Store.PutSetting(ctx, keyPrefix+name, fmt.Sprint(next[name])); err != nil {
			return fmt.Errorf("write API switch %s: %w", name, err)
		}
	}
	if by == "" {
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(next)) {
		if was, ok := cur[name]; ok && was == next[name] {
			continue
		}
		state := "off"
		if next[name] {
			state = "on"
		}
		audit.Change{Event: audit.APISwitchChanged, By: by, Detail: name + "=" + state}.Record(ctx, s.Audit)
	}
	return nil
}

// SetSecret sets the named secret name to value, sealed in the store, and
// reports whether it was new. Audited as secret.set; the value never is.
func (s *Service) SetSecret(ctx context.Context, by, name string, value []byte) (_ store.NamedSecret, created bool, err error) {
	n, created, err := s.Store.SetNamedSecret(ctx, name, value, time.Time{})
	if err != nil {
		return store.NamedSecret{}, false, err
	}
	detail := "secret " + name + " replaced"
	if created {
		detail = "secret " + name + " created"
	}
	audit.Change{Event: audit.SecretSet, By: by, Detail: detail}.Record(ctx, s.Audit)
	return n, created, nil
}

// RemoveSecret removes a named secret; store.ErrNotFound when there is
// none. Audited as secret.removed.
func (s *Service) RemoveSecret(ctx context.Context, by, name string) error {
	if err := s.Store.DeleteNamedSecret(ctx, name); err != nil {
		return err
	}
	audit.Change{Event: audit.SecretRemoved, By: by, Detail: "secret " + name}.Record(ctx, s.Audit)
	return nil
}
