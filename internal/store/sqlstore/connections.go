package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

const connectionCols = `principal, server, access_token, refresh_token, token_type, expires_at, issued_at,
	scopes, instance_url, status, last_error, failures, retry_at, created_at, updated_at`

// connectionInfoCols are the columns a list reads: no token column, so a
// list never opens a ciphertext.
const connectionInfoCols = `principal, server, token_type, expires_at, issued_at,
	scopes, instance_url, status, last_error, failures, retry_at, created_at, updated_at`

// connectionAAD binds a sealed token to its row and its column, so a
// ciphertext copied to another principal's row, another server's, or from
// the refresh_token column to access_token does not open. The NUL cannot
// occur in a principal or server name, so no two keys share an AAD.
func connectionAAD(principal, server, column string) []byte {
	return []byte("connection:" + column + ":" + principal + "\x00" + server)
}

func (s *Store) sealToken(c *store.Connection, column, token string) ([]byte, error) {
	if token == "" {
		return []byte{}, nil
	}
	b, err := s.sealer.Seal([]byte(token), connectionAAD(c.Principal, c.Server, column))
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", column, err)
	}
	return b, nil
}

func (s *Store) openToken(c *store.Connection, column string, sealed []byte) (string, error) {
	if len(sealed) == 0 {
		return "", nil
	}
	b, err := s.sealer.Open(sealed, connectionAAD(c.Principal, c.Server, column))
	if err != nil {
		return "", fmt.Errorf("open %s of connection %q/%q: %w", column, c.Principal, c.Server, err)
	}
	return string(b), nil
}

// connectionArgs seals and encodes everything but the key and CreatedAt.
func (s *Store) connectionArgs(c *store.Connection, at time.Time) ([]any, error) {
	access, err := s.sealToken(c, "access_token", c.AccessToken)
	if err != nil {
		return nil, err
	}
	refresh, err := s.sealToken(c, "refresh_token", c.RefreshToken)
	if err != nil {
		return nil, err
	}
	scopes, err := encodeList(c.Scopes)
	if err != nil {
		return nil, err
	}
	status := c.Status
	if status == "" {
		status = store.ConnectionOK
	}
	if status != store.ConnectionOK && status != store.ConnectionReconnectRequired {
		return nil, fmt.Errorf("connection status %q: want %q or %q", status, store.ConnectionOK, store.ConnectionReconnectRequired)
	}
	return []any{access, refresh, c.TokenType, microsOrZero(c.Expiry), microsOrZero(c.IssuedAt), scopes, c.InstanceURL, status,
		c.LastError, c.Failures, microsOrZero(c.RetryAt), micros(nowOr(c.UpdatedAt, at))}, nil
}

// PutConnection upserts a connection. The foreign key refuses a server
// that does not exist; the error is told apart from others by looking the
// server up, which needs no dialect hook for foreign-key errors and costs
// nothing on the path that succeeds.
func (s *Store) PutConnection(ctx context.Context, c store.Connection) error {
	at := now()
	args, err := s.connectionArgs(&c, at)
	if err != nil {
		return fmt.Errorf("put connection %q/%q: %w", c.Principal, c.Server, err)
	}
	all := append([]any{c.Principal, c.Server}, args...)
	all = append(all, micros(nowOr(c.CreatedAt, at)))
	_, err = s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO connections (principal, server, access_token, refresh_token,
		token_type, expires_at, issued_at, scopes, instance_url, status, last_error, failures, retry_at, updated_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (principal, server) DO UPDATE SET access_token = excluded.access_token,
			refresh_token = excluded.refresh_token, token_type = excluded.token_type,
			expires_at = excluded.expires_at, issued_at = excluded.issued_at, scopes = excluded.scopes,
			instance_url = excluded.instance_url,
			status = excluded.status, last_error = excluded.last_error, failures = excluded.failures,
			retry_at = excluded.retry_at, updated_at = excluded.updated_at`), all...)
	if err != nil {
		var one int
		if qerr := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT 1 FROM oauth_servers WHERE name = ?`), c.Server).Scan(&one); errors.Is(qerr, sql.ErrNoRows) {
			return fmt.Errorf("put connection %q/%q: oauth server %q: %w", c.Principal, c.Server, c.Server, store.ErrNotFound)
		}
		return fmt.Errorf("put connection %q/%q: %w", c.Principal, c.Server, err)
	}
	return nil
}

// GetConnection reads one connection with its tokens opened.
func (s *Store) GetConnection(ctx context.Context, principal, server string) (store.Connection, error) {
	row := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT `+connectionCols+` FROM connections WHERE principal = ? AND server = ?`),
		principal, server)
	c, err := s.scanConnection(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Connection{}, fmt.Errorf("connection %q/%q: %w", principal, server, store.ErrNotFound)
	}
	if err != nil {
		return store.Connection{}, fmt.Errorf("get connection %q/%q: %w", principal, server, err)
	}
	return c, nil
}

// ListConnections lists a principal's connections without their tokens.
// A principal has one connection per OAuth server at most, a short list,
// so it is not paged.
func (s *Store) ListConnections(ctx context.Context, principal string) ([]store.Connection, error) {
	rows, err := s.read.QueryContext(ctx, s.q.rebind(`SELECT `+connectionInfoCols+` FROM connections
		WHERE principal = ? ORDER BY server`), principal)
	if err != nil {
		return nil, fmt.Errorf("list connections of %q: %w", principal, err)
	}
	defer rows.Close()
	var out []store.Connection
	for rows.Next() {
		var (
			c                                 store.Connection
			scopes                            string
			exp, iss, retry, created, updated int64
		)
		if err := rows.Scan(&c.Principal, &c.Server, &c.TokenType, &exp, &iss, &scopes, &c.InstanceURL, &c.Status, &c.LastError,
			&c.Failures, &retry, &created, &updated); err != nil {
			return nil, fmt.Errorf("list connections of %q: %w", principal, err)
		}
		if c.Scopes, err = decodeList(scopes); err != nil {
			return nil, fmt.Errorf("list connections of %q: %w", principal, err)
		}
		c.Expiry, c.IssuedAt, c.RetryAt = fromMicrosOrZero(exp), fromMicrosOrZero(iss), fromMicrosOrZero(retry)
		c.CreatedAt, c.UpdatedAt = fromMicros(created), fromMicros(updated)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list connections of %q: %w", principal, err)
	}
	return out, nil
}

// DeleteConnection removes one connection.
func (s *Store) DeleteConnection(ctx context.Context, principal, server string) error {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM connections WHERE principal = ? AND server = ?`),
		principal, server)
	if err != nil {
		return fmt.Errorf("delete connection %q/%q: %w", principal, server, err)
	}
	return affectedOne(res, "delete connection", principal+"/"+server)
}

// RefreshConnection runs fn with the connection's row locked. On
// PostgreSQL the lock is SELECT … FOR UPDATE: a second server's
// transaction waits at its own SELECT and, under READ COMMITTED, then reads
// the row the first one committed. SQLite has no row locks and needs none:
// the writer connection begins every transaction with BEGIN IMMEDIATE
// (the _txlock=immediate DSN parameter), which takes the database's write
// lock at once, so the read inside the transaction is already serialised
// with every other writer. The cost on SQLite is that other writes wait
// while fn runs, so fn must be bounded (the vault gives the provider call
// a timeout).
func (s *Store) RefreshConnection(ctx context.Context, principal, server string,
	fn func(current store.Connection) (store.Connection, error)) (store.Connection, error) {
	q := `SELECT ` + connectionCols + ` FROM connections WHERE principal = ? AND server = ?`
	if s.dialect.Name == "postgres" {
		q += ` FOR UPDATE`
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return store.Connection{}, fmt.Errorf("refresh connection %q/%q: %w", principal, server, err)
	}
	defer func() { _ = tx.Rollback() }() // no-op after Commit
	cur, err := s.scanConnection(tx.QueryRowContext(ctx, s.q.rebind(q), principal, server))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Connection{}, fmt.Errorf("connection %q/%q: %w", principal, server, store.ErrNotFound)
	}
	if err != nil {
		return store.Connection{}, fmt.Errorf("refresh connection %q/%q: %w", principal, server, err)
	}
	next, err := fn(cur)
	if err != nil {
		return store.Connection{}, err
	}
	// fn may not move the row: the key is the lock's.
	next.Principal, next.Server, next.CreatedAt = cur.Principal, cur.Server, cur.CreatedAt
	next.UpdatedAt = time.Time{}
	at := now()
	args, err := s.connectionArgs(&next, at)
	if err != nil {
		return store.Connection{}, fmt.Errorf("refresh connection %q/%q: %w", principal, server, err)
	}
	if _, err := tx.ExecContext(ctx, s.q.rebind(`UPDATE connections SET access_token = ?, refresh_token = ?,
		token_type = ?, expires_at = ?, issued_at = ?, scopes = ?, instance_url = ?, status = ?, last_error = ?, failures = ?,
		retry_at = ?, updated_at = ? WHERE principal = ? AND server = ?`), append(args, principal, server)...); err != nil {
		return store.Connection{}, fmt.Errorf("refresh connection %q/%q: %w", principal, server, err)
	}
	if err := tx.Commit(); err != nil {
		return store.Connection{}, fmt.Errorf("refresh connection %q/%q: commit: %w", principal, server, err)
	}
	// Return the row as a read would: times in UTC at microsecond precision.
	next.UpdatedAt = at
	next.Expiry, next.IssuedAt, next.RetryAt = storedTime(next.Expiry), storedTime(next.IssuedAt), storedTime(next.RetryAt)
	if next.Status == "" {
		next.Status = store.ConnectionOK
	}
	return next, nil
}

// storedTime is t as it reads back from the database.
func storedTime(t time.Time) time.Time { return fromMicrosOrZero(microsOrZero(t)) }

func (s *Store) scanConnection(sc scanner) (store.Connection, error) {
	var (
		c                                 store.Connection
		access, refresh                   []byte
		scopes                            string
		exp, iss, retry, created, updated int64
	)
	if err := sc.Scan(&c.Principal, &c.Server, &access, &refresh, &c.TokenType, &exp, &iss, &scopes, &c.InstanceURL, &c.Status,
		&c.LastError, &c.Failures, &retry, &created, &updated); err != nil {
		return store.Connection{}, err
	}
	var err error
	if c.AccessToken, err = s.openToken(&c, "access_token", access); err != nil {
		return store.Connection{}, err
	}
	if c.RefreshToken, err = s.openToken(&c, "refresh_token", refresh); err != nil {
		return store.Connection{}, err
	}
	if c.Scopes, err = decodeList(scopes); err != nil {
		return store.Connection{}, err
	}
	c.Expiry, c.IssuedAt, c.RetryAt = fromMicrosOrZero(exp), fromMicrosOrZero(iss), fromMicrosOrZero(retry)
	c.CreatedAt, c.UpdatedAt = fromMicros(created), fromMicros(updated)
	return c, nil
}
