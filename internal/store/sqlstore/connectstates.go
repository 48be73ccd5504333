package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

const connectStateCols = `state_hash, instance_id, step_id, seq, task_serial, principal, session_hash, server,
	verifier, scopes, expires_at, created_at`

// connectStateAAD binds a sealed PKCE verifier to its state, so a verifier
// copied into another state's row does not open.
func connectStateAAD(stateHash string) []byte {
	return []byte("connect_state:verifier:" + stateHash)
}

// CreateConnectState stores a pending user login, its verifier sealed. A
// state needs a hash, a session to come back from and an expiry: without
// them it could never be taken, or never be pruned.
func (s *Store) CreateConnectState(ctx context.Context, c store.ConnectState) error {
	if c.StateHash == "" || c.SessionHash == "" || c.ExpiresAt.IsZero() {
		return errors.New("create connect state: state hash, session hash and expiry are required")
	}
	verifier := []byte{}
	if c.Verifier != "" {
		var err error
		if verifier, err = s.sealer.Seal([]byte(c.Verifier), connectStateAAD(c.StateHash)); err != nil {
			return fmt.Errorf("create connect state: seal verifier: %w", err)
		}
	}
	scopes, err := encodeList(c.Scopes)
	if err != nil {
		return fmt.Errorf("create connect state: scopes: %w", err)
	}
	_, err = s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO connect_states (`+connectStateCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		c.StateHash, c.InstanceID, c.StepID, c.Seq, c.TaskSerial, c.Principal, c.SessionHash, c.Server,
		verifier, scopes, micros(c.ExpiresAt), micros(nowOr(c.CreatedAt, now())))
	if err != nil {
		return fmt.Errorf("create connect state: %w", s.conflict(err))
	}
	return nil
}

// TakeConnectState is one DELETE … RETURNING, spelled the same in SQLite
// (3.35+) and PostgreSQL, so the check and the removal cannot be split by
// another taker. On SQLite every write goes through the single writer
// connection, so two takes run one after the other; on PostgreSQL the
// second DELETE waits for the first one's row lock and, under READ
// COMMITTED, then finds the row gone. Either way one caller gets the row
// and every other one ErrNotFound. A session or expiry mismatch matches no
// row, so it deletes nothing.
func (s *Store) TakeConnectState(ctx context.Context, stateHash, sessionHash string, at time.Time) (store.ConnectState, error) {
	row := s.write.QueryRowContext(ctx, s.q.rebind(`DELETE FROM connect_states
		WHERE state_hash = ? AND session_hash = ? AND expires_at > ?
		RETURNING `+connectStateCols), stateHash, sessionHash, micros(at))
	var (
		c                store.ConnectState
		verifier         []byte
		scopes           string
		expires, created int64
	)
	err := row.Scan(&c.StateHash, &c.InstanceID, &c.StepID, &c.Seq, &c.TaskSerial, &c.Principal, &c.SessionHash,
		&c.Server, &verifier, &scopes, &expires, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ConnectState{}, fmt.Errorf("take connect state: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.ConnectState{}, fmt.Errorf("take connect state: %w", err)
	}
	// The row is gone by now whatever follows: a verifier that does not
	// open means a tampered row or a lost key, and the login cannot finish
	// either way.
	if len(verifier) > 0 {
		b, err := s.sealer.Open(verifier, connectStateAAD(c.StateHash))
		if err != nil {
			return store.ConnectState{}, fmt.Errorf("take connect state: open verifier: %w", err)
		}
		c.Verifier = string(b)
	}
	if c.Scopes, err = decodeList(scopes); err != nil {
		return store.ConnectState{}, fmt.Errorf("take connect state: %w", err)
	}
	c.ExpiresAt, c.CreatedAt = fromMicros(expires), fromMicros(created)
	return c, nil
}

// DeleteExpiredConnectStates deletes the states TakeConnectState would no
// longer find at now: those whose expiry is at or before it.
func (s *Store) DeleteExpiredConnectStates(ctx context.Context, at time.Time) (int, error) {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM connect_states WHERE expires_at <= ?`), micros(at))
	if err != nil {
		return 0, fmt.Errorf("delete expired connect states: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete expired connect states: %w", err)
	}
	return int(n), nil
}
