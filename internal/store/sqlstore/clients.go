package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/flowgate/flowgate/internal/store"
)

func clientLists(c store.Client) ([]string, error) {
	names := []string{"redirect_uris", "post_logout_redirect_uris", "grant_types", "scopes", "roles", "allowed_origins", "audiences"}
	return encodeLists(names, c.RedirectURIs, c.PostLogoutRedirectURIs, c.GrantTypes, c.Scopes, c.Roles, c.AllowedOrigins, c.Audiences)
}

// CreateClient adds a client. Zero times are filled in as for CreateUser.
func (s *Store) CreateClient(ctx context.Context, c store.Client) error {
	if c.ID == "" {
		return errors.New("create client: empty id")
	}
	l, err := clientLists(c)
	if err != nil {
		return fmt.Errorf("create client %q: %w", c.ID, err)
	}
	created := nowOr(c.CreatedAt, now())
	updated := nowOr(c.UpdatedAt, created)
	_, err = s.write.ExecContext(ctx, s.q.createClient,
		c.ID, c.Name, c.SecretHash, l[0], l[1], l[2], l[3],
		c.TokenEndpointAuthMethod, c.JWKS, c.JWKSURI, c.PublicKeyPEM, c.Consent, c.DPoP, l[4],
		micros(created), micros(updated), l[5], l[6])
	if err != nil {
		return fmt.Errorf("create client %q: %w", c.ID, s.conflict(err))
	}
	return nil
}

// UpdateClient replaces every field but CreatedAt. A zero UpdatedAt
// becomes now.
func (s *Store) UpdateClient(ctx context.Context, c store.Client) error {
	l, err := clientLists(c)
	if err != nil {
		return fmt.Errorf("update client %q: %w", c.ID, err)
	}
	res, err := s.write.ExecContext(ctx, s.q.updateClient,
		c.Name, c.SecretHash, l[0], l[1], l[2], l[3],
		c.TokenEndpointAuthMethod, c.JWKS, c.JWKSURI, c.PublicKeyPEM, c.Consent, c.DPoP, l[4],
		micros(nowOr(c.UpdatedAt, now())), l[5], l[6], c.ID)
	if err != nil {
		return fmt.Errorf("update client %q: %w", c.ID, err)
	}
	return affectedOne(res, "update client", c.ID)
}

// GetClient reads one client. It is on every token request's path.
func (s *Store) GetClient(ctx context.Context, id string) (store.Client, error) {
	var row *sql.Row
	if s.getClientStmt != nil {
		row = s.getClientStmt.QueryRowContext(ctx, id)
	} else {
		row = s.read.QueryRowContext(ctx, s.q.getClient, id)
	}
	c, err := scanClient(row)
	if err != nil {
		return store.Client{}, fmt.Errorf("get client %q: %w", id, notFound(err))
	}
	return c, nil
}

// ListClients pages through clients by id.
func (s *Store) ListClients(ctx context.Context, p store.Page) ([]store.Client, string, error) {
	out, next, err := listPage(ctx, s, p, s.q.listClientsFirst, s.q.listClientsAfter, scanClient,
		func(c store.Client) string { return c.ID })
	if err != nil {
		return nil, "", fmt.Errorf("list clients: %w", err)
	}
	return out, next, nil
}

// DeleteClient removes a client.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	res, err := s.write.ExecContext(ctx, s.q.deleteClient, id)
	if err != nil {
		return fmt.Errorf("delete client %q: %w", id, err)
	}
	return affectedOne(res, "delete client", id)
}

func scanClient(sc scanner) (store.Client, error) {
	var (
		c                                            store.Client
		redirects, postLogout, grants, scopes, roles string
		origins, audiences                           string
		created, updated                             int64
	)
	if err := sc.Scan(&c.ID, &c.Name, &c.SecretHash, &redirects, &postLogout, &grants, &scopes,
		&c.TokenEndpointAuthMethod, &c.JWKS, &c.JWKSURI, &c.PublicKeyPEM, &c.Consent, &c.DPoP, &roles,
		&created, &updated, &origins, &audiences); err != nil {
		return store.Client{}, err
	}
	var err error
	for _, f := range []struct {
		dst  *[]string
		src  string
		name string
	}{
		{&c.RedirectURIs, redirects, "redirect_uris"},
		{&c.PostLogoutRedirectURIs, postLogout, "post_logout_redirect_uris"},
		{&c.GrantTypes, grants, "grant_types"},
		{&c.Scopes, scopes, "scopes"},
		{&c.Roles, roles, "roles"},
		{&c.AllowedOrigins, origins, "allowed_origins"},
		{&c.Audiences, audiences, "audiences"},
	} {
		if *f.dst, err = decodeList(f.src); err != nil {
			return store.Client{}, fmt.Errorf("client %q %s: %w", c.ID, f.name, err)
		}
	}
	c.CreatedAt, c.UpdatedAt = fromMicros(created), fromMicros(updated)
	return c, nil
}
