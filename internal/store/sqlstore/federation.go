package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

const (
	fedLinkCols  = `provider, subject, username, email, roles, created_at, last_login_at`
	fedStateCols = `state_hash, browser_hash, provider, nonce, verifier, request, return_to, expires_at, created_at`
)

// fedStateAAD binds a sealed nonce or verifier to its state and its use,
// so neither opens in another row or as the other.
func fedStateAAD(stateHash, what string) []byte {
	return []byte("federation_state:" + what + ":" + stateHash)
}

// CreateFederationState stores a pending federated sign-in, its nonce and
// verifier sealed. Hash, browser, provider and expiry are required:
// without them it could never be taken or pruned.
func (s *Store) CreateFederationState(ctx context.Context, st store.FederationState) error {
	if st.StateHash == "" || st.BrowserHash == "" || st.Provider == "" || st.ExpiresAt.IsZero() {
		return errors.New("create federation state: state hash, browser hash, provider and expiry are required")
	}
	nonce, err := s.sealer.Seal([]byte(st.Nonce), fedStateAAD(st.StateHash, "nonce"))
	if err != nil {
		return fmt.Errorf("create federation state: seal nonce: %w", err)
	}
	verifier, err := s.sealer.Seal([]byte(st.Verifier), fedStateAAD(st.StateHash, "verifier"))
	if err != nil {
		return fmt.Errorf("create federation state: seal verifier: %w", err)
	}
	_, err = s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO federation_states (`+fedStateCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		st.StateHash, st.BrowserHash, st.Provider, nonce, verifier, st.Request, st.ReturnTo,
		micros(st.ExpiresAt), micros(nowOr(st.CreatedAt, now())))
	if err != nil {
		return fmt.Errorf("create federation state: %w", s.conflict(err))
	}
	return nil
}

// TakeFederationState is one DELETE … RETURNING, like TakeConnectState:
// of two callers taking one state, one gets it and the other ErrNotFound;
// a browser or expiry mismatch deletes nothing.
func (s *Store) TakeFederationState(ctx context.Context, stateHash, browserHash string, at time.Time) (store.FederationState, error) {
	row := s.write.QueryRowContext(ctx, s.q.rebind(`DELETE FROM federation_states
		WHERE state_hash = ? AND browser_hash = ? AND expires_at > ?
		RETURNING `+fedStateCols), stateHash, browserHash, micros(at))
	var (
		st               store.FederationState
		nonce, verifier  []byte
		expires, created int64
	)
	err := row.Scan(&st.StateHash, &st.BrowserHash, &st.Provider, &nonce, &verifier, &st.Request, &st.ReturnTo, &expires, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return store.FederationState{}, fmt.Errorf("take federation state: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.FederationState{}, fmt.Errorf("take federation state: %w", err)
	}
	n, err := s.sealer.Open(nonce, fedStateAAD(st.StateHash, "nonce"))
	if err != nil {
		return store.FederationState{}, fmt.Errorf("take federation state: open nonce: %w", err)
	}
	v, err := s.sealer.Open(verifier, fedStateAAD(st.StateHash, "verifier"))
	if err != nil {
		return store.FederationState{}, fmt.Errorf("take federation state: open verifier: %w", err)
	}
	st.Nonce, st.Verifier = string(n), string(v)
	st.ExpiresAt, st.CreatedAt = fromMicros(expires), fromMicros(created)
	return st, nil
}

// DeleteExpiredFederationStates deletes the states TakeFederationState
// would no longer find at now.
func (s *Store) DeleteExpiredFederationStates(ctx context.Context, at time.Time) (int, error) {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM federation_states WHERE expires_at <= ?`), micros(at))
	if err != nil {
		return 0, fmt.Errorf("delete expired federation states: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete expired federation states: %w", err)
	}
	return int(n), nil
}

func scanFedLink(sc scanner) (store.FederationLink, error) {
	var (
		l              store.FederationLink
		roles          string
		created, login int64
	)
	if err := sc.Scan(&l.Provider, &l.Subject, &l.Username, &l.Email, &roles, &created, &login); err != nil {
		return store.FederationLink{}, err
	}
	var err error
	if l.Roles, err = decodeList(roles); err != nil {
		return store.FederationLink{}, fmt.Errorf("federation link roles: %w", err)
	}
	l.CreatedAt, l.LastLoginAt = fromMicros(created), fromMicros(login)
	return l, nil
}

// GetFederationLink reads one link.
func (s *Store) GetFederationLink(ctx context.Context, provider, subject string) (store.FederationLink, error) {
	row := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT `+fedLinkCols+` FROM federation_links
		WHERE provider = ? AND subject = ?`), provider, subject)
	l, err := scanFedLink(row)
	if err != nil {
		return store.FederationLink{}, fmt.Errorf("get federation link %s: %w", provider, notFound(err))
	}
	return l, nil
}

// CreateFederationLink links a subject to an existing user. The user is
// checked in the same transaction as the insert, so a link never points
// at nobody whichever backend enforces foreign keys.
func (s *Store) CreateFederationLink(ctx context.Context, l store.FederationLink) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create federation link: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // no-op after Commit
	var one int
	if err := tx.QueryRowContext(ctx, s.q.rebind(`SELECT 1 FROM users WHERE username = ?`), l.Username).Scan(&one); err != nil {
		return fmt.Errorf("create federation link: user %q: %w", l.Username, notFound(err))
	}
	if err := s.insertFedLink(ctx, tx, l); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create federation link: %w", err)
	}
	return nil
}

// CreateFederatedUser creates the user and the link in one transaction.
func (s *Store) CreateFederatedUser(ctx context.Context, u store.User, l store.FederationLink) error {
	if u.Username == "" || u.Username != l.Username {
		return errors.New("create federated user: the link must name the user")
	}
	roles, err := encodeList(u.Roles)
	if err != nil {
		return fmt.Errorf("create federated user %q: encode roles: %w", u.Username, err)
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create federated user: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	created := nowOr(u.CreatedAt, now())
	if _, err := tx.ExecContext(ctx, s.q.createUser, u.Username, u.PasswordHash, u.Email, u.EmailVerified, u.Name,
		roles, u.Disabled, micros(created), micros(nowOr(u.UpdatedAt, created))); err != nil {
		return fmt.Errorf("create federated user %q: %w", u.Username, s.conflict(err))
	}
	if err := s.insertFedLink(ctx, tx, l); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create federated user: %w", err)
	}
	return nil
}

func (s *Store) insertFedLink(ctx context.Context, tx *sql.Tx, l store.FederationLink) error {
	if l.Provider == "" || l.Subject == "" || l.Username == "" {
		return errors.New("create federation link: provider, subject and username are required")
	}
	roles, err := encodeList(l.Roles)
	if err != nil {
		return fmt.Errorf("create federation link: encode roles: %w", err)
	}
	created := nowOr(l.CreatedAt, now())
	_, err = tx.ExecContext(ctx, s.q.rebind(`INSERT INTO federation_links (`+fedLinkCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		l.Provider, l.Subject, l.Username, l.Email, roles, micros(created), micros(nowOr(l.LastLoginAt, created)))
	if err != nil {
		return fmt.Errorf("create federation link %s: %w", l.Provider, s.conflict(err))
	}
	return nil
}

// UpdateFederationLink records a sign-in through the link.
func (s *Store) UpdateFederationLink(ctx context.Context, l store.FederationLink) error {
	roles, err := encodeList(l.Roles)
	if err != nil {
		return fmt.Errorf("update federation link: encode roles: %w", err)
	}
	res, err := s.write.ExecContext(ctx, s.q.rebind(`UPDATE federation_links SET email = ?, roles = ?, last_login_at = ?
		WHERE provider = ? AND subject = ?`), l.Email, roles, micros(nowOr(l.LastLoginAt, now())), l.Provider, l.Subject)
	if err != nil {
		return fmt.Errorf("update federation link %s: %w", l.Provider, err)
	}
	return affectedOne(res, "update federation link", l.Provider)
}

// ListFederationLinks lists one user's links, or everyone's.
func (s *Store) ListFederationLinks(ctx context.Context, username string) ([]store.FederationLink, error) {
	q, args := `SELECT `+fedLinkCols+` FROM federation_links`, []any{}
	if username != "" {
		q, args = q+` WHERE username = ?`, append(args, username)
	}
	rows, err := s.read.QueryContext(ctx, s.q.rebind(q+` ORDER BY provider, username, subject`), args...)
	if err != nil {
		return nil, fmt.Errorf("list federation links: %w", err)
	}
	defer rows.Close()
	var out []store.FederationLink
	for rows.Next() {
		l, err := scanFedLink(rows)
		if err != nil {
			return nil, fmt.Errorf("list federation links: %w", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list federation links: %w", err)
	}
	return out, nil
}

// DeleteFederationLink removes one link.
func (s *Store) DeleteFederationLink(ctx context.Context, provider, subject string) error {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM federation_links WHERE provider = ? AND subject = ?`), provider, subject)
	if err != nil {
		return fmt.Errorf("delete federation link %s: %w", provider, err)
	}
	return affectedOne(res, "delete federation link", provider)
}

// UsersByEmail finds users by address, ignoring case (the lower(email)
// index serves it).
func (s *Store) UsersByEmail(ctx context.Context, email string) ([]store.User, error) {
	if strings.TrimSpace(email) == "" {
		return nil, nil
	}
	rows, err := s.read.QueryContext(ctx, s.q.rebind(`SELECT `+userCols+` FROM users WHERE lower(email) = lower(?) ORDER BY username`), email)
	if err != nil {
		return nil, fmt.Errorf("users by email: %w", err)
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("users by email: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("users by email: %w", err)
	}
	return out, nil
}
