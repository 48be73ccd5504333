package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/credential"
	"github.com/flowgate/flowgate/internal/store"
)

// ApplyDeclared writes what the configuration declares to the store, each
// object created or updated by name; nothing the file does not name is
// touched, and none of it is audited (the file is its record). See
// docs/configuration.md. The order matters: users and clients; trusted
// issuers and OAuth servers; then the flows, whose deploy refuses a step
// naming an OAuth server the store does not hold; then the API switches,
// where the file wins at every start. Last, the validator is given the
// trusted issuers now in the store.
func (s *Server) ApplyDeclared(ctx context.Context) error {
	if err := s.applyUsersAndClients(ctx); err != nil {
		return err
	}
	if err := s.api.ApplyDeclared(ctx, s.Config); err != nil {
		return err
	}
	if err := s.deployConfiguredFlows(ctx); err != nil {
		return err
	}
	if err := s.api.SeedSwitches(ctx, s.Config.APIs); err != nil {
		return err
	}
	return s.issuers.load(ctx)
}

// deployConfiguredFlows deploys the flows: file or folder, as the actor
// "config". The default ./flows may be missing; a path set explicitly must
// exist (the configuration's checks say so).
func (s *Server) deployConfiguredFlows(ctx context.Context) error {
	if s.Config.Flows == "" {
		return nil
	}
	if _, err := os.Stat(s.Config.Flows); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	deployed, err := s.engine.DeployPath(ctx, s.Config.Flows, "config")
	if err != nil {
		return fmt.Errorf("flows: %w", err)
	}
	for _, d := range deployed {
		if d.Created {
			s.Logger.Info("flow deployed", "flow", d.Definition.Name, "version", d.Definition.Version, "file", d.File)
		}
	}
	return nil
}

// applyUsersAndClients creates or updates, by name, the users and clients
// the configuration declares.
func (a *App) applyUsersAndClients(ctx context.Context) error {
	for i, u := range a.Config.Users {
		if err := a.applyUser(ctx, u); err != nil {
			return fmt.Errorf("users[%d] %q: %w", i, u.Username, err)
		}
	}
	for i, c := range a.Config.Clients {
		if err := a.applyClient(ctx, c); err != nil {
			return fmt.Errorf("clients[%d] %q: %w", i, c.ID, err)
		}
	}
	return nil
}

func (a *App) applyUser(ctx context.Context, u config.User) error {
	now := time.Now().UTC()
	cur, err := a.Store.GetUser(ctx, u.Username)
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	next := cur
	next.Username, next.Email, next.Name = u.Username, u.Email, u.Name
	next.Roles = slices.Clone(u.Roles)
	next.EmailVerified = u.Email != ""
	next.UpdatedAt = now
	switch {
	case u.PasswordHash != "":
		next.PasswordHash = u.PasswordHash
	case u.Password != "" && !(exists && credential.VerifyPassword(u.Password, cur.PasswordHash)):
		// Rehash only when the password changed, so a restart does not
		// rewrite every declared user.
		if next.PasswordHash, err = a.Hasher.Hash(u.Password); err != nil {
			return err
		}
		releaseHashMemory()
	}
	if !exists {
		next.CreatedAt = now
		return a.Store.CreateUser(ctx, next)
	}
	if sameUser(cur, next) {
		return nil
	}
	return a.Store.UpdateUser(ctx, next)
}

func sameUser(a, b store.User) bool {
	return a.PasswordHash == b.PasswordHash && a.Email == b.Email && a.Name == b.Name &&
		a.EmailVerified == b.EmailVerified && slices.Equal(a.Roles, b.Roles)
}

func (a *App) applyClient(ctx context.Context, c config.Client) error {
	now := time.Now().UTC()
	cur, err := a.Store.GetClient(ctx, c.ID)
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	next := store.Client{
		ID: c.ID, Name: c.Name,
		RedirectURIs:            slices.Clone(c.RedirectURIs),
		PostLogoutRedirectURIs:  slices.Clone(c.PostLogoutRedirectURIs),
		GrantTypes:              slices.Clone(c.GrantTypes),
		Scopes:                  slices.Clone(c.Scopes),
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
		JWKS:                    c.JWKS, JWKSURI: c.JWKSURI, PublicKeyPEM: c.PublicKeyPEM,
		Consent: c.Consent, DPoP: c.DPoP, Roles: slices.Clone(c.Roles),
		AllowedOrigins: slices.Clone(c.AllowedOrigins), Audiences: slices.Clone(c.Audiences),
		CreatedAt: cur.CreatedAt, UpdatedAt: now,
	}
	if c.Secret != "" {
		next.SecretHash = cur.SecretHash
		if !credential.VerifyClientSecret(a.Ring, c.Secret, cur.SecretHash) {
			next.SecretHash = credential.HashClientSecret(a.Ring, c.Secret)
		}
	}
	if !exists {
		next.CreatedAt = now
		return a.Store.CreateClient(ctx, next)
	}
	return a.Store.UpdateClient(ctx, next)
}
