// Package mfa is the second factor of local accounts (docs/security.md,
// "Second factor"): one-time codes from an authenticator app (TOTP, RFC
// 6238, codes made and checked by github.com/pquerna/otp), their
// enrolment with a QR code and a confirming code, ten one-time recovery
// codes, and the administrator's reset. The secret is sealed in the store
// with the key ring; recovery codes are kept as keyed hashes only; each
// time step's code and each recovery code is accepted once, by one
// conditional update in the store, so two servers cannot both take it.
//
// The policy (auth.mfa) is read here too: who must use a second factor.
// The sign-in pages (package authserver) and the account page (package
// web) call this package; it knows nothing of HTTP.
package mfa

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/keyring"
	"github.com/flowgate/flowgate/internal/store"
)

// The parameters of the codes: what every authenticator app supports.
const (
	period        = 30
	digits        = otp.DigitsSix
	skew          = 1 // one step either side, for clocks a little off
	recoveryCount = 10
	qrSize        = 240
	// ACRMFA is the acr_values value with which a client asks for a
	// second factor.
	ACRMFA = "mfa"
)

// Errors of Verify and Confirm.
var (
	// ErrWrongCode is a code that is not the user's current one, nor an
	// unused recovery code.
	ErrWrongCode = errors.New("wrong code")
	// ErrNotEnrolled is a user without a confirmed second factor (or, for
	// Confirm, without an enrolment in progress).
	ErrNotEnrolled = errors.New("no second factor enrolled")
	// ErrEnrolled is an enrolment started by a user who has a factor.
	ErrEnrolled = errors.New("a second factor is already enrolled")
)

// Store is what this package needs of the store.
type Store interface {
	store.SecondFactors
	store.Passkeys
	GetUser(ctx context.Context, username string) (store.User, error)
}

// Options configure New.
type Options struct {
	Store Store
	Ring  *keyring.Ring
	// Policy is auth.mfa; empty means optional.
	Policy string
	// Issuer names the service in authenticator apps ("Flowgate" when
	// empty).
	Issuer string
	// Auditor records enrolments and resets; nil records nothing.
	Auditor audit.Recorder
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Origin is the server's public URL, the WebAuthn relying party of
	// passkeys; passkeys are not offered without one, or when its host
	// is an IP address (browsers refuse those).
	Origin string
}

// Service is the second factor. It is safe for concurrent use.
type Service struct {
	opts Options
	wa   *webauthn.WebAuthn
}

// New returns the service.
func New(opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Policy == "" {
		opts.Policy = config.MFAOptional
	}
	if opts.Issuer == "" {
		opts.Issuer = "Flowgate"
	}
	return &Service{opts: opts, wa: newWebAuthn(opts.Origin, opts.Issuer)}
}

// Policy returns auth.mfa.
func (s *Service) Policy() string { return s.opts.Policy }

// Offered reports whether people may enrol and use a second factor.
func (s *Service) Offered() bool { return s.opts.Policy != config.MFAOff }

// Enrolled reports whether user has a second factor: a confirmed
// one-time-code app or a passkey.
func (s *Service) Enrolled(ctx context.Context, user string) (bool, error) {
	ok, err := s.HasTOTP(ctx, user)
	if err != nil || ok {
		return ok, err
	}
	return s.HasPasskeys(ctx, user)
}

// HasTOTP reports whether user has a confirmed one-time-code app.
func (s *Service) HasTOTP(ctx context.Context, user string) (bool, error) {
	t, err := s.opts.Store.GetTOTP(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mfa: %w", err)
	}
	return t.Confirmed, nil
}

// Needed says what a password sign-in of user needs next: "" (nothing,
// the password is enough), "verify" (a code) or "enrol" (enrolment first,
// then the sign-in completes). asked is whether the client sent
// acr_values=mfa. With the policy off, nothing is ever asked.
func (s *Service) Needed(ctx context.Context, user string, asked bool) (string, error) {
	if !s.Offered() {
		return "", nil
	}
	enrolled, err := s.Enrolled(ctx, user)
	if err != nil {
		return "", err
	}
	switch {
	case enrolled:
		return "verify", nil
	case s.opts.Policy == config.MFARequired || asked:
		return "enrol", nil
	}
	return "", nil
}

// Begin starts (or restarts) an enrolment for user: a fresh secret,
// stored unconfirmed. It returns the secret for people who type it in
// rather than scan the QR code. ErrEnrolled when the user has a factor.
func (s *Service) Begin(ctx context.Context, user string) (string, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.opts.Issuer, AccountName: user, Period: period, Digits: digits})
	if err != nil {
		return "", fmt.Errorf("mfa: new secret: %w", err)
	}
	if err := s.opts.Store.PutTOTP(ctx, user, key.Secret(), s.opts.Now()); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return "", ErrEnrolled
		}
		return "", fmt.Errorf("mfa: %w", err)
	}
	return key.Secret(), nil
}

// Pending returns the secret of user's enrolment in progress;
// ErrNotEnrolled when there is none (or it is already confirmed).
func (s *Service) Pending(ctx context.Context, user string) (string, error) {
	t, err := s.opts.Store.GetTOTP(ctx, user)
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.Confirmed) {
		return "", ErrNotEnrolled
	}
	if err != nil {
		return "", fmt.Errorf("mfa: %w", err)
	}
	return t.Secret, nil
}

// QRCode draws the otpauth:// URL of user's enrolment in progress as a
// PNG, for the authenticator app to scan.
func (s *Service) QRCode(ctx context.Context, user string) ([]byte, error) {
	secret, err := s.Pending(ctx, user)
	if err != nil {
		return nil, err
	}
	key, err := otp.NewKeyFromURL(s.keyURL(user, secret))
	if err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	img, err := key.Image(qrSize, qrSize)
	if err != nil {
		return nil, fmt.Errorf("mfa: qr code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("mfa: qr code: %w", err)
	}
	return buf.Bytes(), nil
}

// keyURL is the otpauth:// URL of secret, as totp.Generate spells it.
func (s *Service) keyURL(user, secret string) string {
	raw, _ := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.opts.Issuer, AccountName: user, Period: period, Digits: digits, Secret: raw})
	if err != nil {
		return ""
	}
	return key.URL()
}

// Confirm ends user's enrolment with a code from the app: the secret
// becomes the user's factor and ten recovery codes are returned, to be
// shown once (only their hashes are kept). ErrWrongCode when the code
// does not match; ErrNotEnrolled when no enrolment is in progress.
// Audited as user.mfa_enrolled, by the user.
func (s *Service) Confirm(ctx context.Context, user, code string) ([]string, error) {
	secret, err := s.Pending(ctx, user)
	if err != nil {
		return nil, err
	}
	step, ok := matchStep(secret, code, s.opts.Now())
	if !ok {
		return nil, ErrWrongCode
	}
	codes := make([]string, recoveryCount)
	hashes := make([]string, recoveryCount)
	for i := range codes {
		codes[i] = newRecoveryCode()
		hashes[i] = s.recoveryHash(user, codes[i])
	}
	if err := s.opts.Store.ConfirmTOTP(ctx, user, step, hashes); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, ErrNotEnrolled
		}
		return nil, fmt.Errorf("mfa: %w", err)
	}
	audit.Change{Event: audit.UserMFAEnrolled, By: "user:" + user, Detail: "user " + user + ": one-time codes"}.Record(ctx, s.opts.Auditor)
	return codes, nil
}

// Verify checks a second-factor code of user: a current one-time code
// (accepted once: a code of a step already used is refused) or an unused
// recovery code (then spent). It returns the amr values the factor adds.
// ErrWrongCode when neither; ErrNotEnrolled when the user has no factor.
func (s *Service) Verify(ctx context.Context, user, code string) ([]string, error) {
	t, err := s.opts.Store.GetTOTP(ctx, user)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !t.Confirmed) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	code = strings.TrimSpace(code)
	if step, ok := matchStep(t.Secret, code, s.opts.Now()); ok {
		fresh, err := s.opts.Store.UseTOTPStep(ctx, user, step)
		if err != nil {
			return nil, fmt.Errorf("mfa: %w", err)
		}
		if !fresh {
			return nil, ErrWrongCode
		}
		return []string{"otp", "mfa"}, nil
	}
	if normalizeRecovery(code) == "" {
		return nil, ErrWrongCode
	}
	spent, err := s.opts.Store.UseRecoveryCode(ctx, user, s.recoveryHash(user, code), s.opts.Now())
	if err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	if !spent {
		return nil, ErrWrongCode
	}
	return []string{"otp", "mfa"}, nil
}

// RecoveryCodesLeft counts user's unused recovery codes.
func (s *Service) RecoveryCodesLeft(ctx context.Context, user string) (int, error) {
	n, err := s.opts.Store.CountRecoveryCodes(ctx, user)
	if err != nil {
		return 0, fmt.Errorf("mfa: %w", err)
	}
	return n, nil
}

// Reset removes user's second factors (an enrolment in progress too), so
// that they enrol again: at their next sign-in when the policy requires
// one. store.ErrNotFound when there is no such user. Audited as
// user.mfa_reset by by (a principal, see audit.Change), also when there
// was nothing to remove.
func (s *Service) Reset(ctx context.Context, by, user string) error {
	if _, err := s.opts.Store.GetUser(ctx, user); err != nil {
		return err
	}
	removed, err := s.opts.Store.DeleteSecondFactors(ctx, user)
	if err != nil {
		return fmt.Errorf("mfa: %w", err)
	}
	detail := "user " + user
	if !removed {
		detail += ": had none"
	}
	audit.Change{Event: audit.UserMFAReset, By: by, Detail: detail}.Record(ctx, s.opts.Auditor)
	return nil
}

// matchStep finds the time step (within skew of now) whose code is code,
// comparing in constant time. The codes are made by the library.
func matchStep(secret, code string, now time.Time) (int64, bool) {
	code = strings.TrimSpace(code)
	if len(code) != digits.Length() {
		return 0, false
	}
	cur := now.Unix() / period
	var found int64
	ok := false
	for step := cur - skew; step <= cur+skew; step++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*period, 0), totp.ValidateOpts{Period: period, Digits: digits, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && !ok {
			found, ok = step, true
		}
	}
	return found, ok
}

// recoveryAlphabet leaves out letters people confuse (0/o, 1/l/i).
const recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// newRecoveryCode makes a code of 10 characters, about 50 bits, shown as
// two groups of five.
func newRecoveryCode() string {
	b := make([]byte, 10)
	for i := range b {
		b[i] = recoveryAlphabet[randIndex(len(recoveryAlphabet))]
	}
	return string(b[:5]) + "-" + string(b[5:])
}

func randIndex(n int) int {
	// Rejection sampling keeps the choice uniform.
	limit := 256 - 256%n
	var one [1]byte
	for {
		if _, err := rand.Read(one[:]); err != nil {
			panic("crypto/rand: " + err.Error())
		}
		if int(one[0]) < limit {
			return int(one[0]) % n
		}
	}
}

// normalizeRecovery lowercases a typed recovery code and drops the
// separators people add or leave out.
func normalizeRecovery(code string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return r
	}, code)
}

// recoveryHash is the keyed hash a recovery code is kept as, bound to
// its user.
func (s *Service) recoveryHash(user, code string) string {
	return s.opts.Ring.MAC("mfa-recovery-code", []byte(user+"\x00"+normalizeRecovery(code)))
}
