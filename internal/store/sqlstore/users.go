package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/flowgate/flowgate/internal/store"
)

// CreateUser adds a user. A zero CreatedAt becomes now, and a zero
// UpdatedAt becomes CreatedAt, so that imports can keep their history.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	if u.Username == "" {
		return errors.New("create user: empty username")
	}
	roles, err := encodeList(u.Roles)
	if err != nil {
		return fmt.Errorf("create user %q: encode roles: %w", u.Username, err)
	}
	created := nowOr(u.CreatedAt, now())
	updated := nowOr(u.UpdatedAt, created)
	_, err = s.write.ExecContext(ctx, s.q.createUser,
		u.Username, u.PasswordHash, u.Email, u.EmailVerified, u.Name, roles, u.Disabled,
		micros(created), micros(updated))
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.Username, s.conflict(err))
	}
	return nil
}

// UpdateUser replaces every field but CreatedAt. A zero UpdatedAt becomes
// now.
func (s *Store) UpdateUser(ctx context.Context, u store.User) error {
	roles, err := encodeList(u.Roles)
	if err != nil {
		return fmt.Errorf("update user %q: encode roles: %w", u.Username, err)
	}
	res, err := s.write.ExecContext(ctx, s.q.updateUser,
		u.PasswordHash, u.Email, u.EmailVerified, u.Name, roles, u.Disabled,
		micros(nowOr(u.UpdatedAt, now())), u.Username)
	if err != nil {
		return fmt.Errorf("update user %q: %w", u.Username, err)
	}
	return affectedOne(res, "update user", u.Username)
}

// GetUser reads one user.
func (s *Store) GetUser(ctx context.Context, username string) (store.User, error) {
	var row *sql.Row
	if s.getUserStmt != nil {
		row = s.getUserStmt.QueryRowContext(ctx, username)
	} else {
		row = s.read.QueryRowContext(ctx, s.q.getUser, username)
	}
	u, err := scanUser(row)
	if err != nil {
		return store.User{}, fmt.Errorf("get user %q: %w", username, notFound(err))
	}
	return u, nil
}

// ListUsers pages through users by username.
func (s *Store) ListUsers(ctx context.Context, p store.Page) ([]store.User, string, error) {
	out, next, err := listPage(ctx, s, p, s.q.listUsersFirst, s.q.listUsersAfter, scanUser,
		func(u store.User) string { return u.Username })
	if err != nil {
		return nil, "", fmt.Errorf("list users: %w", err)
	}
	return out, next, nil
}

// CountUsers counts every user.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.read.QueryRowContext(ctx, s.q.countUsers).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface {
	Scan(dest ...any) error
}

func scanUser(sc scanner) (store.User, error) {
	var (
		u                store.User
		roles            string
		created, updated int64
	)
	if err := sc.Scan(&u.Username, &u.PasswordHash, &u.Email, &u.EmailVerified, &u.Name,
		&roles, &u.Disabled, &created, &updated); err != nil {
		return store.User{}, err
	}
	var err error
	if u.Roles, err = decodeList(roles); err != nil {
		return store.User{}, fmt.Errorf("user %q roles: %w", u.Username, err)
	}
	u.CreatedAt, u.UpdatedAt = fromMicros(created), fromMicros(updated)
	return u, nil
}

// notFound maps sql.ErrNoRows to store.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// affectedOne turns "no row changed" into store.ErrNotFound.
func affectedOne(res sql.Result, op, key string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s %q: %w", op, key, err)
	}
	if n == 0 {
		return fmt.Errorf("%s %q: %w", op, key, store.ErrNotFound)
	}
	return nil
}
