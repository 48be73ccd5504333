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
	// DeleteSecondFactors removes the user's TOTP secret and recovery
	// codes and reports whether there was anything to remove.
	DeleteSecondFactors(ctx context.Context, user string) (bool, error)
}
