package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/flowgate/flowgate/internal/store"
)

// The settings queries are rebound on each call (s.q.rebind) instead of
// living in the shared queries struct: they run at admin rate or once every
// few seconds (the API switch cache), where a placeholder rewrite costs
// nothing, and keeping them here keeps this part of the schema in its own
// files.
const (
	issuerCols = `name, issuer, metadata_url, audience, subject_claim, scope_claim, roles_claim,
		scope_map, source, created_at, updated_at`
	oauthServerCols = `name, metadata_url, authorization_endpoint, token_endpoint, refresh_endpoint,
		revocation_endpoint, client_id, client_secret, client_auth, private_key_file, key_id, scopes,
		params, use_prompt, use_pkce, redirect_uri, source, created_at, updated_at, dpop`
)

// oauthServerAAD binds a sealed client secret to its server, so that a
// ciphertext copied into another row does not open.
func oauthServerAAD(name string) []byte { return []byte("oauth-server:" + name) }

// encodeMap stores nil and empty maps alike as "{}".
func encodeMap(m map[string]string) (string, error) {
	if len(m) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// decodeMap returns nil for an empty map, as decodeList does for lists.
func decodeMap(s string) (map[string]string, error) {
	if s == "" || s == "{}" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("decode map: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

func validSource(src string) (string, error) {
	switch src {
	case "":
		return store.SourceAPI, nil
	case store.SourceAPI, store.SourceConfig:
		return src, nil
	}
	return "", fmt.Errorf("source %q is not %s or %s", src, store.SourceConfig, store.SourceAPI)
}

// --- trusted issuers ---

// CreateTrustedIssuer adds an issuer. Zero times are filled in as for
// CreateUser; an empty Source is "api".
func (s *Store) CreateTrustedIssuer(ctx context.Context, t store.TrustedIssuer) error {
	if t.Name == "" || t.Issuer == "" {
		return errors.New("create trusted issuer: name and issuer are required")
	}
	sm, err := encodeMap(t.ScopeMap)
	if err != nil {
		return fmt.Errorf("create trusted issuer %q: scope_map: %w", t.Name, err)
	}
	src, err := validSource(t.Source)
	if err != nil {
		return fmt.Errorf("create trusted issuer %q: %w", t.Name, err)
	}
	created := nowOr(t.CreatedAt, now())
	updated := nowOr(t.UpdatedAt, created)
	_, err = s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO trusted_issuers (`+issuerCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		t.Name, t.Issuer, t.MetadataURL, t.Audience, t.SubjectClaim, t.ScopeClaim, t.RolesClaim,
		sm, src, micros(created), micros(updated))
	if err != nil {
		return fmt.Errorf("create trusted issuer %q: %w", t.Name, s.conflict(err))
	}
	return nil
}

// UpdateTrustedIssuer replaces every field but CreatedAt. A zero UpdatedAt
// becomes now.
func (s *Store) UpdateTrustedIssuer(ctx context.Context, t store.TrustedIssuer) error {
	sm, err := encodeMap(t.ScopeMap)
	if err != nil {
		return fmt.Errorf("update trusted issuer %q: scope_map: %w", t.Name, err)
	}
	src, err := validSource(t.Source)
	if err != nil {
		return fmt.Errorf("update trusted issuer %q: %w", t.Name, err)
	}
	res, err := s.write.ExecContext(ctx, s.q.rebind(`UPDATE trusted_issuers SET issuer = ?, metadata_url = ?,
		audience = ?, subject_claim = ?, scope_claim = ?, roles_claim = ?, scope_map = ?, source = ?,
		updated_at = ? WHERE name = ?`),
		t.Issuer, t.MetadataURL, t.Audience, t.SubjectClaim, t.ScopeClaim, t.RolesClaim, sm, src,
		micros(nowOr(t.UpdatedAt, now())), t.Name)
	if err != nil {
		return fmt.Errorf("update trusted issuer %q: %w", t.Name, s.conflict(err))
	}
	return affectedOne(res, "update trusted issuer", t.Name)
}

// GetTrustedIssuer reads one issuer.
func (s *Store) GetTrustedIssuer(ctx context.Context, name string) (store.TrustedIssuer, error) {
	row := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT `+issuerCols+` FROM trusted_issuers WHERE name = ?`), name)
	t, err := scanTrustedIssuer(row)
	if err != nil {
		return store.TrustedIssuer{}, fmt.Errorf("get trusted issuer %q: %w", name, notFound(err))
	}
	return t, nil
}

// ListTrustedIssuers pages through issuers by name.
func (s *Store) ListTrustedIssuers(ctx context.Context, p store.Page) ([]store.TrustedIssuer, string, error) {
	out, next, err := listPage(ctx, s, p,
		s.q.rebind(`SELECT `+issuerCols+` FROM trusted_issuers ORDER BY name LIMIT ?`),
		s.q.rebind(`SELECT `+issuerCols+` FROM trusted_issuers WHERE name > ? ORDER BY name LIMIT ?`),
		scanTrustedIssuer, func(t store.TrustedIssuer) string { return t.Name })
	if err != nil {
		return nil, "", fmt.Errorf("list trusted issuers: %w", err)
	}
	return out, next, nil
}

// DeleteTrustedIssuer removes an issuer.
func (s *Store) DeleteTrustedIssuer(ctx context.Context, name string) error {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM trusted_issuers WHERE name = ?`), name)
	if err != nil {
		return fmt.Errorf("delete trusted issuer %q: %w", name, err)
	}
	return affectedOne(res, "delete trusted issuer", name)
}

func scanTrustedIssuer(sc scanner) (store.TrustedIssuer, error) {
	var (
		t                store.TrustedIssuer
		sm               string
		created, updated int64
	)
	if err := sc.Scan(&t.Name, &t.Issuer, &t.MetadataURL, &t.Audience, &t.SubjectClaim, &t.ScopeClaim,
		&t.RolesClaim, &sm, &t.Source, &created, &updated); err != nil {
		return store.TrustedIssuer{}, err
	}
	var err error
	if t.ScopeMap, err = decodeMap(sm); err != nil {
		return store.TrustedIssuer{}, fmt.Errorf("trusted issuer %q scope_map: %w", t.Name, err)
	}
	t.CreatedAt, t.UpdatedAt = fromMicros(created), fromMicros(updated)
	return t, nil
}

// --- OAuth servers ---

// sealSecret seals a non-empty client secret; an empty one stays empty so
// that "no secret" needs no key to read.
func (s *Store) sealSecret(name, secret string) ([]byte, error) {
	if secret == "" {
		return []byte{}, nil
	}
	return s.sealer.Seal([]byte(secret), oauthServerAAD(name))
}

func (s *Store) oauthServerArgs(o store.OAuthServer) (sealed []byte, scopes, params, src string, err error) {
	if sealed, err = s.sealSecret(o.Name, o.ClientSecret); err != nil {
		return nil, "", "", "", fmt.Errorf("seal client_secret: %w", err)
	}
	if scopes, err = encodeList(o.Scopes); err != nil {
		return nil, "", "", "", fmt.Errorf("encode scopes: %w", err)
	}
	if params, err = encodeMap(o.Params); err != nil {
		return nil, "", "", "", fmt.Errorf("encode params: %w", err)
	}
	src, err = validSource(o.Source)
	return sealed, scopes, params, src, err
}

// CreateOAuthServer adds a server, its client secret sealed.
func (s *Store) CreateOAuthServer(ctx context.Context, o store.OAuthServer) error {
	if o.Name == "" {
		return errors.New("create oauth server: empty name")
	}
	sealed, scopes, params, src, err := s.oauthServerArgs(o)
	if err != nil {
		return fmt.Errorf("create oauth server %q: %w", o.Name, err)
	}
	created := nowOr(o.CreatedAt, now())
	updated := nowOr(o.UpdatedAt, created)
	_, err = s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO oauth_servers (`+oauthServerCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		o.Name, o.MetadataURL, o.AuthorizationEndpoint, o.TokenEndpoint, o.RefreshEndpoint,
		o.RevocationEndpoint, o.ClientID, sealed, o.ClientAuth, o.PrivateKeyFile, o.KeyID, scopes,
		params, o.UsePrompt, o.UsePKCE, o.RedirectURI, src, micros(created), micros(updated), o.DPoP)
	if err != nil {
		return fmt.Errorf("create oauth server %q: %w", o.Name, s.conflict(err))
	}
	return nil
}

// UpdateOAuthServer replaces every field but CreatedAt, resealing the
// client secret.
func (s *Store) UpdateOAuthServer(ctx context.Context, o store.OAuthServer) error {
	sealed, scopes, params, src, err := s.oauthServerArgs(o)
	if err != nil {
		return fmt.Errorf("update oauth server %q: %w", o.Name, err)
	}
	res, err := s.write.ExecContext(ctx, s.q.rebind(`UPDATE oauth_servers SET metadata_url = ?,
		authorization_endpoint = ?, token_endpoint = ?, refresh_endpoint = ?, revocation_endpoint = ?,
		client_id = ?, client_secret = ?, client_auth = ?, private_key_file = ?, key_id = ?, scopes = ?,
		params = ?, use_prompt = ?, use_pkce = ?, redirect_uri = ?, source = ?, updated_at = ?, dpop = ?
		WHERE name = ?`),
		o.MetadataURL, o.AuthorizationEndpoint, o.TokenEndpoint, o.RefreshEndpoint, o.RevocationEndpoint,
		o.ClientID, sealed, o.ClientAuth, o.PrivateKeyFile, o.KeyID, scopes, params, o.UsePrompt,
		o.UsePKCE, o.RedirectURI, src, micros(nowOr(o.UpdatedAt, now())), o.DPoP, o.Name)
	if err != nil {
		return fmt.Errorf("update oauth server %q: %w", o.Name, err)
	}
	return affectedOne(res, "update oauth server", o.Name)
}

// GetOAuthServer reads one server and opens its client secret.
func (s *Store) GetOAuthServer(ctx context.Context, name string) (store.OAuthServer, error) {
	row := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT `+oauthServerCols+` FROM oauth_servers WHERE name = ?`), name)
	o, err := s.scanOAuthServer(row)
	if err != nil {
		return store.OAuthServer{}, fmt.Errorf("get oauth server %q: %w", name, notFound(err))
	}
	return o, nil
}

// ListOAuthServers pages through servers by name.
func (s *Store) ListOAuthServers(ctx context.Context, p store.Page) ([]store.OAuthServer, string, error) {
	out, next, err := listPage(ctx, s, p,
		s.q.rebind(`SELECT `+oauthServerCols+` FROM oauth_servers ORDER BY name LIMIT ?`),
		s.q.rebind(`SELECT `+oauthServerCols+` FROM oauth_servers WHERE name > ? ORDER BY name LIMIT ?`),
		s.scanOAuthServer, func(o store.OAuthServer) string { return o.Name })
	if err != nil {
		return nil, "", fmt.Errorf("list oauth servers: %w", err)
	}
	return out, next, nil
}

// DeleteOAuthServer removes a server.
func (s *Store) DeleteOAuthServer(ctx context.Context, name string) error {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM oauth_servers WHERE name = ?`), name)
	if err != nil {
		return fmt.Errorf("delete oauth server %q: %w", name, err)
	}
	return affectedOne(res, "delete oauth server", name)
}

func (s *Store) scanOAuthServer(sc scanner) (store.OAuthServer, error) {
	var (
		o                store.OAuthServer
		sealed           []byte
		scopes, params   string
		created, updated int64
	)
	if err := sc.Scan(&o.Name, &o.MetadataURL, &o.AuthorizationEndpoint, &o.TokenEndpoint,
		&o.RefreshEndpoint, &o.RevocationEndpoint, &o.ClientID, &sealed, &o.ClientAuth,
		&o.PrivateKeyFile, &o.KeyID, &scopes, &params, &o.UsePrompt, &o.UsePKCE, &o.RedirectURI,
		&o.Source, &created, &updated, &o.DPoP); err != nil {
		return store.OAuthServer{}, err
	}
	var err error
	if o.Scopes, err = decodeList(scopes); err != nil {
		return store.OAuthServer{}, fmt.Errorf("oauth server %q scopes: %w", o.Name, err)
	}
	if o.Params, err = decodeMap(params); err != nil {
		return store.OAuthServer{}, fmt.Errorf("oauth server %q params: %w", o.Name, err)
	}
	if len(sealed) > 0 {
		pt, err := s.sealer.Open(sealed, oauthServerAAD(o.Name))
		if err != nil {
			return store.OAuthServer{}, fmt.Errorf("oauth server %q client_secret: open: %w", o.Name, err)
		}
		o.ClientSecret = string(pt)
	}
	o.CreatedAt, o.UpdatedAt = fromMicros(created), fromMicros(updated)
	return o, nil
}

// dpopKeyAAD binds a sealed DPoP key to its server.
func dpopKeyAAD(server string) []byte { return []byte("oauth-server-dpop-key:" + server) }

// DPoPKey returns the server's DPoP key, inserting generate's when there
// is none: ON CONFLICT DO NOTHING, then the row read back, so concurrent
// first uses on several servers agree on one key.
func (s *Store) DPoPKey(ctx context.Context, server string, generate func() ([]byte, error)) ([]byte, error) {
	var sealed []byte
	err := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT sealed FROM oauth_server_dpop_keys WHERE server = ?`), server).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		key, gerr := generate()
		if gerr != nil {
			return nil, fmt.Errorf("dpop key of %q: %w", server, gerr)
		}
		fresh, serr := s.sealer.Seal(key, dpopKeyAAD(server))
		if serr != nil {
			return nil, fmt.Errorf("dpop key of %q: seal: %w", server, serr)
		}
		var one int
		if qerr := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT 1 FROM oauth_servers WHERE name = ?`), server).Scan(&one); errors.Is(qerr, sql.ErrNoRows) {
			return nil, fmt.Errorf("dpop key of %q: %w", server, store.ErrNotFound)
		}
		if _, err := s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO oauth_server_dpop_keys (server, sealed, created_at) VALUES (?, ?, ?)
			ON CONFLICT (server) DO NOTHING`), server, fresh, micros(now())); err != nil {
			return nil, fmt.Errorf("dpop key of %q: %w", server, err)
		}
		// The write pool: what this or a concurrent insert just stored.
		err = s.write.QueryRowContext(ctx, s.q.rebind(`SELECT sealed FROM oauth_server_dpop_keys WHERE server = ?`), server).Scan(&sealed)
	}
	if err != nil {
		return nil, fmt.Errorf("dpop key of %q: %w", server, notFound(err))
	}
	key, err := s.sealer.Open(sealed, dpopKeyAAD(server))
	if err != nil {
		return nil, fmt.Errorf("dpop key of %q: open: %w", server, err)
	}
	return key, nil
}

// --- key/value settings ---

// PutSetting creates or replaces a named value.
func (s *Store) PutSetting(ctx context.Context, name, value string) error {
	if name == "" {
		return errors.New("put setting: empty name")
	}
	if _, err := s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO settings (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`),
		name, value, micros(now())); err != nil {
		return fmt.Errorf("put setting %q: %w", name, err)
	}
	return nil
}

// GetSetting reads a named value.
func (s *Store) GetSetting(ctx context.Context, name string) (string, error) {
	var v string
	if err := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT value FROM settings WHERE name = ?`), name).Scan(&v); err != nil {
		return "", fmt.Errorf("get setting %q: %w", name, notFound(err))
	}
	return v, nil
}

// ListSettings reads the values whose names start with prefix. The table
// holds a handful of rows, so filtering here is simpler than a LIKE that
// would need escaping of _ and % in the prefix.
func (s *Store) ListSettings(ctx context.Context, prefix string) (map[string]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT name, value FROM settings`)
	if err != nil {
		return nil, fmt.Errorf("list settings: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var n, v string
		if err := rows.Scan(&n, &v); err != nil {
			return nil, fmt.Errorf("list settings: %w", err)
		}
		if strings.HasPrefix(n, prefix) {
			out[n] = v
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list settings: %w", err)
	}
	return out, nil
}
