package store

import (
	"context"
	"time"
)

// TOTP is a user's time-based one-time password secret (RFC 6238).
type TOTP struct {
	User string
	// Secret is the base32 shared secret; the store keeps it sealed.
	Secret string
	// Confirmed is false until the user has typed a code made from it:
	// an unconfirmed secret is an enrolment in progress, not a factor.
	Confirmed bool
	// LastStep is the last time step whose code was accepted; a code of
	// that step or an earlier one is refused, so none is taken twice.
	LastStep  int64
	CreatedAt time.Time
}

// SecondFactors keeps local accounts' second factors: a TOTP secret and
// its recovery codes (stored as keyed hashes, made by the caller).
type SecondFactors interface {
	// PutTOTP starts an enrolment: it stores secret, unconfirmed, for
	// user, replacing an unconfirmed one. ErrConflict when the user has a
	// confirmed secret; ErrNotFound when there is no such user.
	PutTOTP(ctx context.Context, user, secret string, at time.Time) error
	// GetTOTP reads the user's secret, confirmed or not; ErrNotFound when
	// there is none.
	GetTOTP(ctx context.Context, user string) (TOTP, error)
	// ConfirmTOTP ends an enrolment in one transaction: the secret becomes
	// confirmed with step as its last used step, and recoveryHashes
	// replace the user's recovery codes. ErrNotFound when the user has no
	// unconfirmed secret.
	ConfirmTOTP(ctx context.Context, user string, step int64, recoveryHashes []string) error
	// UseTOTPStep records step as the last one used, only when it is
	// later than the last one, in one statement: false when it is not (a
	// replayed code) or the user has no confirmed secret.
	UseTOTPStep(ctx context.Context, user string, step int64) (bool, error)
	// UseRecoveryCode spends one unused recovery code of user, in one
	// statement: false when there is no such unused code.
	UseRecoveryCode(ctx context.Context, user, hash string, at time.Time) (bool, error)
	// CountRecoveryCodes counts the user's unused recovery codes.
	CountRecoveryCodes(ctx context.Context, user string) (int, error)
	// DeleteSecondFactors removes the user's TOTP secret, recovery codes
	// and passkeys and reports whether there was anything to remove.
	DeleteSecondFactors(ctx context.Context, user string) (bool, error)
}

// Passkey is a WebAuthn credential of a user.
type Passkey struct {
	// ID is the credential ID the authenticator chose.
	ID   []byte
	User string
	// Name is what the user called it.
	Name      string
	PublicKey []byte
	SignCount uint32
	// Credential is the WebAuthn library's JSON record of the credential,
	// from which a sign-in is checked.
	Credential []byte
	CreatedAt  time.Time
	// LastUsedAt is zero until the first sign-in with it.
	LastUsedAt time.Time
}

// Passkeys keeps users' passkeys and the state of WebAuthn ceremonies.
type Passkeys interface {
	// AddPasskey stores a new passkey. ErrNotFound when there is no such
	// user; ErrConflict when the credential ID is already stored.
	AddPasskey(ctx context.Context, p Passkey) error
	// ListPasskeys lists the user's passkeys, oldest first.
	ListPasskeys(ctx context.Context, user string) ([]Passkey, error)
	// GetPasskey reads a passkey by credential ID; ErrNotFound when none.
	GetPasskey(ctx context.Context, id []byte) (Passkey, error)
	// UsePasskey records a sign-in with the passkey: its new sign count and
	// credential record. ErrNotFound when it was removed meanwhile.
	UsePasskey(ctx context.Context, id []byte, signCount uint32, credential []byte, at time.Time) error
	// DeletePasskey removes the user's passkey id and reports whether
	// there was one (another user's passkey is never removed).
	DeletePasskey(ctx context.Context, user string, id []byte) (bool, error)
	// PutPasskeyChallenge keeps a ceremony's state until expires.
	PutPasskeyChallenge(ctx context.Context, id string, data []byte, expires time.Time) error
	// TakePasskeyChallenge returns and deletes a ceremony's state in one
	// statement, so it is used once; ErrNotFound when it is unknown,
	// already taken or expired at now.
	TakePasskeyChallenge(ctx context.Context, id string, now time.Time) ([]byte, error)
}
