package store

import (
	"context"
	"time"
)

// ConnectState is a pending user login started at /connect/{instance}/{step} (docs/flows.md): what
// /oauth-callback needs to finish it. The state parameter itself is never stored, only its hash.
type ConnectState struct {
	StateHash   string    // hex SHA-256 of the state parameter
	InstanceID  string    // the flow instance the login belongs to
	StepID      string    // the oauth_user_login step
	Seq         int       // the step record the instance waits at; 0 when the login does not resume an instance
	TaskSerial  int64     // the connect task it completes; 0 when none
	Principal   string    // who logs in, e.g. user:alice
	SessionHash string    // the browser session that started it; the callback must come from the same session
	Server      string    // the oauth_servers entry
	Verifier    string    // PKCE code verifier, plain in memory only: sealed in the database (AAD bound to StateHash), "" = none
	Scopes      []string  // requested scopes; nil = the server's
	ExpiresAt   time.Time // when the login may no longer finish
	CreatedAt   time.Time // zero: now
}

// ConnectStates stores pending user logins.
type ConnectStates interface {
	// CreateConnectState stores s. ErrConflict when StateHash exists.
	CreateConnectState(ctx context.Context, s ConnectState) error
	// TakeConnectState deletes and returns the state with stateHash, atomically, so a state
	// is used at most once even by two servers at the same moment. It is found only when it
	// has not expired at now and its SessionHash equals sessionHash; otherwise ErrNotFound,
	// and a state presented from another session is left untouched (a foreign callback must
	// not burn the owner's pending login).
	TakeConnectState(ctx context.Context, stateHash, sessionHash string, now time.Time) (ConnectState, error)
	// DeleteExpiredConnectStates removes states expired before now and returns how many.
	DeleteExpiredConnectStates(ctx context.Context, now time.Time) (int, error)
}
