package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// The authorization server's queries are few per request and, apart from
// the revocation check, off the hot path, so they are rebound per call
// (a no-op on SQLite) rather than kept in the shared queries struct.

// signingKeyAAD binds a sealed private key to its key id, so a ciphertext
// copied into another row does not open.
func signingKeyAAD(id string) []byte { return []byte("signing-key:" + id) }

// microsOrZero stores the zero time as 0, the "not set" sentinel.
func microsOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return micros(t)
}

func fromMicrosOrZero(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return fromMicros(us)
}

// AddSigningKey inserts k as the active key of its purpose. The partial
// unique index signing_keys_active turns a second active key into a
// conflict, which is what makes concurrent first starts safe.
func (s *Store) AddSigningKey(ctx context.Context, k store.SigningKey) error {
	sealed, err := s.sealer.Seal(k.Private, signingKeyAAD(k.ID))
	if err != nil {
		return fmt.Errorf("add signing key %q: seal: %w", k.ID, err)
	}
	_, err = s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO signing_keys
		(id, purpose, alg, sealed, public_jwk, created_at, retire_after) VALUES (?, ?, ?, ?, ?, ?, 0)`),
		k.ID, k.Purpose, k.Alg, sealed, k.PublicJWK, micros(nowOr(k.CreatedAt, now())))
	if err != nil {
		return fmt.Errorf("add signing key %q: %w", k.ID, s.conflict(err))
	}
	return nil
}

// RotateSigningKey retires the active key and inserts k in one transaction.
func (s *Store) RotateSigningKey(ctx context.Context, k store.SigningKey, retireAfter time.Time) error {
	sealed, err := s.sealer.Seal(k.Private, signingKeyAAD(k.ID))
	if err != nil {
		return fmt.Errorf("rotate signing key: seal: %w", err)
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("rotate signing key: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, s.q.rebind(`UPDATE signing_keys SET retire_after = ? WHERE purpose = ? AND retire_after = 0`),
		micros(retireAfter), k.Purpose); err != nil {
		return fmt.Errorf("rotate signing key: retire: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q.rebind(`INSERT INTO signing_keys
		(id, purpose, alg, sealed, public_jwk, created_at, retire_after) VALUES (?, ?, ?, ?, ?, ?, 0)`),
		k.ID, k.Purpose, k.Alg, sealed, k.PublicJWK, micros(nowOr(k.CreatedAt, now()))); err != nil {
		return fmt.Errorf("rotate signing key: insert: %w", s.conflict(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("rotate signing key: commit: %w", err)
	}
	return nil
}

// ListSigningKeys returns the published keys, newest first, opened.
func (s *Store) ListSigningKeys(ctx context.Context, at time.Time) ([]store.SigningKey, error) {
	rows, err := s.read.QueryContext(ctx, s.q.rebind(`SELECT id, purpose, alg, sealed, public_jwk, created_at, retire_after
		FROM signing_keys WHERE retire_after = 0 OR retire_after > ? ORDER BY created_at DESC, id`), micros(at))
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	defer rows.Close()
	var keys []store.SigningKey
	for rows.Next() {
		var (
			k                store.SigningKey
			sealed           []byte
			created, retired int64
		)
		if err := rows.Scan(&k.ID, &k.Purpose, &k.Alg, &sealed, &k.PublicJWK, &created, &retired); err != nil {
			return nil, fmt.Errorf("list signing keys: %w", err)
		}
		if k.Private, err = s.sealer.Open(sealed, signingKeyAAD(k.ID)); err != nil {
			return nil, fmt.Errorf("list signing keys: open %q: %w", k.ID, err)
		}
		k.CreatedAt, k.RetireAfter = fromMicros(created), fromMicrosOrZero(retired)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	return keys, nil
}

const authRequestCols = `id, client_id, redirect_uri, scopes, state, nonce, response_type, code_challenge,
	code_challenge_method, prompt, max_age, login_hint, username, auth_time, amr, done, created_at, expires_at,
	response_mode, resource, acr_values, dpop_jkt`

// CreateAuthRequest stores a new authorization request.
func (s *Store) CreateAuthRequest(ctx context.Context, r store.AuthRequest) error {
	l, err := encodeLists([]string{"scopes", "prompt", "amr", "resource", "acr_values"}, r.Scopes, r.Prompt, r.AMR, r.Resource, r.ACRValues)
	if err != nil {
		return fmt.Errorf("create auth request: %w", err)
	}
	_, err = s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO auth_requests (`+authRequestCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		r.ID, r.ClientID, r.RedirectURI, l[0], r.State, r.Nonce, r.ResponseType, r.CodeChallenge,
		r.CodeChallengeMethod, l[1], r.MaxAge, r.LoginHint, r.User, microsOrZero(r.AuthTime), l[2], r.Done,
		micros(nowOr(r.CreatedAt, now())), micros(r.ExpiresAt), r.ResponseMode, l[3], l[4], r.DPoPJKT)
	if err != nil {
		return fmt.Errorf("create auth request: %w", s.conflict(err))
	}
	return nil
}

// GetAuthRequest reads an unexpired authorization request.
func (s *Store) GetAuthRequest(ctx context.Context, id string, at time.Time) (store.AuthRequest, error) {
	var (
		r                          store.AuthRequest
		scopes, prompt, amr, res   string
		acr                        string
		authTime, created, expires int64
	)
	err := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT `+authRequestCols+` FROM auth_requests WHERE id = ? AND expires_at > ?`),
		id, micros(at)).Scan(&r.ID, &r.ClientID, &r.RedirectURI, &scopes, &r.State, &r.Nonce, &r.ResponseType,
		&r.CodeChallenge, &r.CodeChallengeMethod, &prompt, &r.MaxAge, &r.LoginHint, &r.User, &authTime, &amr,
		&r.Done, &created, &expires, &r.ResponseMode, &res, &acr, &r.DPoPJKT)
	if err != nil {
		return store.AuthRequest{}, fmt.Errorf("get auth request: %w", notFound(err))
	}
	if r.Scopes, err = decodeList(scopes); err != nil {
		return store.AuthRequest{}, fmt.Errorf("get auth request: %w", err)
	}
	if r.Prompt, err = decodeList(prompt); err != nil {
		return store.AuthRequest{}, fmt.Errorf("get auth request: %w", err)
	}
	if r.AMR, err = decodeList(amr); err != nil {
		return store.AuthRequest{}, fmt.Errorf("get auth request: %w", err)
	}
	if r.Resource, err = decodeList(res); err != nil {
		return store.AuthRequest{}, fmt.Errorf("get auth request: %w", err)
	}
	if r.ACRValues, err = decodeList(acr); err != nil {
		return store.AuthRequest{}, fmt.Errorf("get auth request: %w", err)
	}
	r.AuthTime, r.CreatedAt, r.ExpiresAt = fromMicrosOrZero(authTime), fromMicros(created), fromMicros(expires)
	return r, nil
}

// CompleteAuthRequest records the signed-in user.
func (s *Store) CompleteAuthRequest(ctx context.Context, id, user string, authTime time.Time, amr []string) error {
	a, err := encodeList(amr)
	if err != nil {
		return fmt.Errorf("complete auth request: %w", err)
	}
	res, err := s.write.ExecContext(ctx, s.q.rebind(`UPDATE auth_requests SET username = ?, auth_time = ?, amr = ?, done = ? WHERE id = ?`),
		user, micros(authTime), a, true, id)
	if err != nil {
		return fmt.Errorf("complete auth request: %w", err)
	}
	return affectedOne(res, "complete auth request", "")
}

// DeleteAuthRequest removes an authorization request.
func (s *Store) DeleteAuthRequest(ctx context.Context, id string) error {
	if _, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM auth_requests WHERE id = ?`), id); err != nil {
		return fmt.Errorf("delete auth request: %w", err)
	}
	return nil
}

const authCodeCols = `hash, client_id, redirect_uri, username, scopes, nonce, code_challenge, code_challenge_method,
	auth_time, amr, access_jti, family_id, created_at, expires_at, used_at, resource, dpop_jkt`

// CreateAuthCode stores a code by its hash.
func (s *Store) CreateAuthCode(ctx context.Context, c store.AuthCode) error {
	l, err := encodeLists([]string{"scopes", "amr", "resource"}, c.Scopes, c.AMR, c.Resource)
	if err != nil {
		return fmt.Errorf("create auth code: %w", err)
	}
	_, err = s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO auth_codes (`+authCodeCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`),
		c.Hash, c.ClientID, c.RedirectURI, c.User, l[0], c.Nonce, c.CodeChallenge, c.CodeChallengeMethod,
		micros(c.AuthTime), l[1], c.AccessJTI, c.FamilyID, micros(nowOr(c.CreatedAt, now())), micros(c.ExpiresAt), l[2], c.DPoPJKT)
	if err != nil {
		return fmt.Errorf("create auth code: %w", s.conflict(err))
	}
	return nil
}

// ConsumeAuthCode marks the code used with one conditional UPDATE, then
// reads it back. The read after the UPDATE is safe: a used code never
// changes again.
func (s *Store) ConsumeAuthCode(ctx context.Context, hash string, at time.Time) (store.AuthCode, error) {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`UPDATE auth_codes SET used_at = ? WHERE hash = ? AND used_at = 0 AND expires_at > ?`),
		micros(at), hash, micros(at))
	if err != nil {
		return store.AuthCode{}, fmt.Errorf("consume auth code: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return store.AuthCode{}, fmt.Errorf("consume auth code: %w", err)
	}
	c, err := s.getAuthCode(ctx, hash)
	if err != nil {
		return store.AuthCode{}, fmt.Errorf("consume auth code: %w", err)
	}
	if n == 1 {
		return c, nil
	}
	if !c.UsedAt.IsZero() {
		return c, fmt.Errorf("consume auth code: %w", store.ErrReused)
	}
	return store.AuthCode{}, fmt.Errorf("consume auth code: expired: %w", store.ErrNotFound)
}

func (s *Store) getAuthCode(ctx context.Context, hash string) (store.AuthCode, error) {
	var (
		c                                store.AuthCode
		scopes, amr, res                 string
		authTime, created, expires, used int64
	)
	// The write pool: the code was just updated there, and on SQLite a
	// reader could lag behind by nothing, but reading where we wrote
	// costs nothing and is obviously right.
	err := s.write.QueryRowContext(ctx, s.q.rebind(`SELECT `+authCodeCols+` FROM auth_codes WHERE hash = ?`), hash).Scan(
		&c.Hash, &c.ClientID, &c.RedirectURI, &c.User, &scopes, &c.Nonce, &c.CodeChallenge, &c.CodeChallengeMethod,
		&authTime, &amr, &c.AccessJTI, &c.FamilyID, &created, &expires, &used, &res, &c.DPoPJKT)
	if err != nil {
		return c, notFound(err)
	}
	if c.Scopes, err = decodeList(scopes); err != nil {
		return c, err
	}
	if c.AMR, err = decodeList(amr); err != nil {
		return c, err
	}
	if c.Resource, err = decodeList(res); err != nil {
		return c, err
	}
	c.AuthTime, c.CreatedAt, c.ExpiresAt, c.UsedAt = fromMicros(authTime), fromMicros(created), fromMicros(expires), fromMicrosOrZero(used)
	return c, nil
}

const refreshCols = `hash, family_id, client_id, username, scopes, auth_time, amr, created_at, expires_at, used_at, revoked, dpop_jkt, resources`

// CreateRefreshToken stores a refresh token by its hash.
func (s *Store) CreateRefreshToken(ctx context.Context, t store.RefreshToken) error {
	return s.insertRefresh(ctx, s.write, t)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (s *Store) insertRefresh(ctx context.Context, db execer, t store.RefreshToken) error {
	l, err := encodeLists([]string{"scopes", "amr", "resources"}, t.Scopes, t.AMR, t.Resources)
	if err != nil {
		return fmt.Errorf("create refresh token: %w", err)
	}
	_, err = db.ExecContext(ctx, s.q.rebind(`INSERT INTO refresh_tokens (`+refreshCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)`),
		t.Hash, t.FamilyID, t.ClientID, t.User, l[0], micros(t.AuthTime), l[1],
		micros(nowOr(t.CreatedAt, now())), micros(t.ExpiresAt), t.Revoked, t.DPoPJKT, l[2])
	if err != nil {
		return fmt.Errorf("create refresh token: %w", s.conflict(err))
	}
	return nil
}

type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) getRefresh(ctx context.Context, db rowQuerier, hash string) (store.RefreshToken, error) {
	var (
		t                                store.RefreshToken
		scopes, amr, resources           string
		authTime, created, expires, used int64
	)
	err := db.QueryRowContext(ctx, s.q.rebind(`SELECT `+refreshCols+` FROM refresh_tokens WHERE hash = ?`), hash).Scan(
		&t.Hash, &t.FamilyID, &t.ClientID, &t.User, &scopes, &authTime, &amr, &created, &expires, &used, &t.Revoked, &t.DPoPJKT, &resources)
	if err != nil {
		return t, notFound(err)
	}
	if t.Resources, err = decodeList(resources); err != nil {
		return t, err
	}
	if t.Scopes, err = decodeList(scopes); err != nil {
		return t, err
	}
	if t.AMR, err = decodeList(amr); err != nil {
		return t, err
	}
	t.AuthTime, t.CreatedAt, t.ExpiresAt, t.UsedAt = fromMicros(authTime), fromMicros(created), fromMicros(expires), fromMicrosOrZero(used)
	return t, nil
}

// GetRefreshToken reads a refresh token by hash.
func (s *Store) GetRefreshToken(ctx context.Context, hash string) (store.RefreshToken, error) {
	t, err := s.getRefresh(ctx, s.read, hash)
	if err != nil {
		return t, fmt.Errorf("get refresh token: %w", err)
	}
	return t, nil
}

// RotateRefreshToken marks the old token used and inserts its successor in
// one transaction. On reuse the family is revoked in a transaction of its
// own, after the rotation's is rolled back, so the revocation sticks.
func (s *Store) RotateRefreshToken(ctx context.Context, clientID, oldHash, newHash string, at, expires time.Time) (store.RefreshToken, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return store.RefreshToken{}, fmt.Errorf("rotate refresh token: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	old, err := s.getRefresh(ctx, tx, oldHash)
	if err != nil {
		return store.RefreshToken{}, fmt.Errorf("rotate refresh token: %w", err)
	}
	switch {
	case old.ClientID != clientID || old.Revoked || !old.ExpiresAt.After(at):
		return store.RefreshToken{}, fmt.Errorf("rotate refresh token: %w", store.ErrNotFound)
	case !old.UsedAt.IsZero():
		_ = tx.Rollback()
		if err := s.RevokeRefreshFamily(ctx, old.FamilyID); err != nil {
			return store.RefreshToken{}, fmt.Errorf("rotate refresh token: reuse: %w", err)
		}
		return old, fmt.Errorf("rotate refresh token: %w", store.ErrReused)
	}
	// The condition repeats what was read: on PostgreSQL (READ COMMITTED)
	// a concurrent rotation may have committed in between, and then this
	// UPDATE changes nothing.
	res, err := tx.ExecContext(ctx, s.q.rebind(`UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at = 0 AND revoked = ?`),
		micros(at), oldHash, false)
	if err != nil {
		return store.RefreshToken{}, fmt.Errorf("rotate refresh token: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return store.RefreshToken{}, fmt.Errorf("rotate refresh token: %w", err)
	} else if n != 1 {
		_ = tx.Rollback()
		if err := s.RevokeRefreshFamily(ctx, old.FamilyID); err != nil {
			return store.RefreshToken{}, fmt.Errorf("rotate refresh token: reuse: %w", err)
		}
		return old, fmt.Errorf("rotate refresh token: %w", store.ErrReused)
	}
	next := store.RefreshToken{
		Hash: newHash, FamilyID: old.FamilyID, ClientID: old.ClientID, User: old.User, Scopes: old.Scopes,
		AuthTime: old.AuthTime, AMR: old.AMR, CreatedAt: nowOr(at, now()), ExpiresAt: expires.UTC().Truncate(time.Microsecond),
		DPoPJKT: old.DPoPJKT, Resources: old.Resources,
	}
	if err := s.insertRefresh(ctx, tx, next); err != nil {
		return store.RefreshToken{}, fmt.Errorf("rotate refresh token: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return store.RefreshToken{}, fmt.Errorf("rotate refresh token: commit: %w", err)
	}
	return next, nil
}

// RevokeRefreshFamily revokes every token of a family.
func (s *Store) RevokeRefreshFamily(ctx context.Context, familyID string) error {
	if _, err := s.write.ExecContext(ctx, s.q.rebind(`UPDATE refresh_tokens SET revoked = ? WHERE family_id = ?`), true, familyID); err != nil {
		return fmt.Errorf("revoke refresh family: %w", err)
	}
	return nil
}

// RevokeUserRefreshTokens revokes every live token of a user.
func (s *Store) RevokeUserRefreshTokens(ctx context.Context, user string) (int64, error) {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`UPDATE refresh_tokens SET revoked = ? WHERE username = ? AND revoked = ?`), true, user, false)
	if err != nil {
		return 0, fmt.Errorf("revoke refresh tokens of %q: %w", user, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("revoke refresh tokens of %q: %w", user, err)
	}
	return n, nil
}

// RevokeAccessToken deny-lists a jti; a second revocation keeps the later
// expiry.
func (s *Store) RevokeAccessToken(ctx context.Context, jti string, expiresAt time.Time) error {
	_, err := s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO revoked_access_tokens (jti, expires_at) VALUES (?, ?)
		ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at WHERE revoked_access_tokens.expires_at < excluded.expires_at`),
		jti, micros(expiresAt))
	if err != nil {
		return fmt.Errorf("revoke access token: %w", err)
	}
	return nil
}

// AccessTokenRevoked is one primary-key lookup; it is on the path of every
// introspection and every API call with one of our tokens.
func (s *Store) AccessTokenRevoked(ctx context.Context, jti string) (bool, error) {
	var one int
	err := s.read.QueryRowContext(ctx, s.q.accessTokenRevoked, jti).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("access token revoked: %w", err)
	}
	return true, nil
}

// CreateSession stores a session by the hash of its id.
func (s *Store) CreateSession(ctx context.Context, se store.Session) error {
	amr, err := encodeList(se.AMR)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	_, err = s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO sessions (id_hash, username, auth_time, last_seen, expires_at, amr)
		VALUES (?, ?, ?, ?, ?, ?)`), se.IDHash, se.User, micros(se.AuthTime), micros(se.LastSeen), micros(se.ExpiresAt), amr)
	if err != nil {
		return fmt.Errorf("create session: %w", s.conflict(err))
	}
	return nil
}

// GetSession reads a live session.
func (s *Store) GetSession(ctx context.Context, idHash string, at time.Time) (store.Session, error) {
	var (
		se                        store.Session
		amr                       string
		authTime, seen, expiresAt int64
	)
	err := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT id_hash, username, auth_time, last_seen, expires_at, amr
		FROM sessions WHERE id_hash = ? AND expires_at > ?`), idHash, micros(at)).Scan(
		&se.IDHash, &se.User, &authTime, &seen, &expiresAt, &amr)
	if err != nil {
		return store.Session{}, fmt.Errorf("get session: %w", notFound(err))
	}
	if se.AMR, err = decodeList(amr); err != nil {
		return store.Session{}, fmt.Errorf("get session: %w", err)
	}
	se.AuthTime, se.LastSeen, se.ExpiresAt = fromMicros(authTime), fromMicros(seen), fromMicros(expiresAt)
	return se, nil
}

// TouchSession moves a session's idle expiry.
func (s *Store) TouchSession(ctx context.Context, idHash string, lastSeen, expiresAt time.Time) error {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`UPDATE sessions SET last_seen = ?, expires_at = ? WHERE id_hash = ?`),
		micros(lastSeen), micros(expiresAt), idHash)
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return affectedOne(res, "touch session", "")
}

// DeleteSession ends a session.
func (s *Store) DeleteSession(ctx context.Context, idHash string) error {
	if _, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM sessions WHERE id_hash = ?`), idHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// ListUserSessions lists a user's live sessions, most recently used first.
func (s *Store) ListUserSessions(ctx context.Context, user string, now time.Time) ([]store.Session, error) {
	rows, err := s.read.QueryContext(ctx, s.q.rebind(`SELECT id_hash, username, auth_time, last_seen, expires_at, amr
		FROM sessions WHERE username = ? AND expires_at > ? ORDER BY last_seen DESC, id_hash`), user, micros(now))
	if err != nil {
		return nil, fmt.Errorf("list sessions of %q: %w", user, err)
	}
	defer rows.Close()
	var out []store.Session
	for rows.Next() {
		var (
			se                        store.Session
			amr                       string
			authTime, seen, expiresAt int64
		)
		if err := rows.Scan(&se.IDHash, &se.User, &authTime, &seen, &expiresAt, &amr); err != nil {
			return nil, fmt.Errorf("list sessions of %q: %w", user, err)
		}
		if se.AMR, err = decodeList(amr); err != nil {
			return nil, fmt.Errorf("list sessions of %q: %w", user, err)
		}
		se.AuthTime, se.LastSeen, se.ExpiresAt = fromMicros(authTime), fromMicros(seen), fromMicros(expiresAt)
		out = append(out, se)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sessions of %q: %w", user, err)
	}
	return out, nil
}

// DeleteUserSessions ends every session of a user.
func (s *Store) DeleteUserSessions(ctx context.Context, user string) error {
	if _, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM sessions WHERE username = ?`), user); err != nil {
		return fmt.Errorf("delete sessions of %q: %w", user, err)
	}
	return nil
}

// GetConsent returns the scopes a user granted a client.
func (s *Store) GetConsent(ctx context.Context, user, clientID string) ([]string, error) {
	var scopes string
	err := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT scopes FROM consents WHERE username = ? AND client_id = ?`),
		user, clientID).Scan(&scopes)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get consent: %w", err)
	}
	l, err := decodeList(scopes)
	if err != nil {
		return nil, fmt.Errorf("get consent: %w", err)
	}
	return l, nil
}

// PutConsent replaces the scopes a user granted a client.
func (s *Store) PutConsent(ctx context.Context, user, clientID string, scopes []string) error {
	l, err := encodeList(scopes)
	if err != nil {
		return fmt.Errorf("put consent: %w", err)
	}
	_, err = s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO consents (username, client_id, scopes, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (username, client_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at`),
		user, clientID, l, micros(now()))
	if err != nil {
		return fmt.Errorf("put consent: %w", err)
	}
	return nil
}

// UseAssertionJTI records a jti. An expired row with the same jti is taken
// over (the conditional DO UPDATE), a live one is a reuse: then no row
// changes.
func (s *Store) UseAssertionJTI(ctx context.Context, clientID, jti string, at, expiresAt time.Time) error {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at WHERE assertion_jtis.expires_at <= ?`),
		clientID, jti, micros(expiresAt), micros(at))
	if err != nil {
		return fmt.Errorf("use assertion jti: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("use assertion jti: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("use assertion jti: %w", store.ErrReused)
	}
	return nil
}

// UseDPoPJTI records the jti of a DPoP proof, as UseAssertionJTI does a
// client assertion's: an expired row is taken over, a live one is a reuse.
func (s *Store) UseDPoPJTI(ctx context.Context, jkt, jti string, at, expiresAt time.Time) error {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO dpop_jtis (jkt, jti, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (jkt, jti) DO UPDATE SET expires_at = excluded.expires_at WHERE dpop_jtis.expires_at <= ?`),
		jkt, jti, micros(expiresAt), micros(at))
	if err != nil {
		return fmt.Errorf("use dpop jti: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("use dpop jti: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("use dpop jti: %w", store.ErrReused)
	}
	return nil
}

// PruneAuth deletes expired authorization-server rows. Revoked refresh
// tokens go with their expiry, not before: a revoked token presented again
// must still be recognised as revoked, not as unknown.
func (s *Store) PruneAuth(ctx context.Context, at time.Time) (int64, error) {
	var total int64
	for _, table := range []string{"auth_requests", "auth_codes", "refresh_tokens", "revoked_access_tokens", "sessions", "assertion_jtis", "dpop_jtis"} {
		res, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM `+table+` WHERE expires_at <= ?`), micros(at))
		if err != nil {
			return total, fmt.Errorf("prune %s: %w", table, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("prune %s: %w", table, err)
		}
		total += n
	}
	// Retired signing keys are kept a day past retirement for forensics.
	res, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM signing_keys WHERE retire_after <> 0 AND retire_after <= ?`),
		micros(at.Add(-24*time.Hour)))
	if err != nil {
		return total, fmt.Errorf("prune signing_keys: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil {
		total += n
	}
	return total, nil
}
