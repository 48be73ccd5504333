package mfa

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
)

// Passkeys (WebAuthn, checked by github.com/go-webauthn/webauthn). A
// ceremony's state (its challenge) is kept in the store between its start
// and its end and taken once, so an answer cannot be played twice.
const (
	ceremonyTTL = 5 * time.Minute
	// MaxPasskeyName bounds the name a user gives a passkey.
	MaxPasskeyName = 64
)

// Errors of the passkey ceremonies.
var (
	// ErrPasskeyRefused is an answer from the browser that does not
	// prove a registered passkey: unknown, removed, wrong challenge,
	// bad signature, or a ceremony expired or already used.
	ErrPasskeyRefused = errors.New("passkey refused")
	// ErrPasskeysOff is a server whose public URL cannot be a WebAuthn
	// relying party, or whose second factors are off.
	ErrPasskeysOff = errors.New("passkeys are not available")
	// ErrBadPasskeyName is an empty or too long name.
	ErrBadPasskeyName = errors.New("a passkey needs a name of 1 to 64 characters")
)

// Passkey is a registered passkey as the account page lists it.
type Passkey struct {
	// ID is the credential ID, base64url, as the remove form sends it.
	ID         string
	Name       string
	CreatedAt  time.Time
	LastUsedAt time.Time
}

// newWebAuthn makes the relying party of origin, the server's public
// URL; nil when origin is not one (no URL, or an IP address, which
// browsers refuse as a relying party ID).
func newWebAuthn(origin, display string) *webauthn.WebAuthn {
	u, err := url.Parse(origin)
	if err != nil || u.Hostname() == "" || net.ParseIP(u.Hostname()) != nil {
		return nil
	}
	w, err := webauthn.New(&webauthn.Config{
		RPID:          u.Hostname(),
		RPDisplayName: display,
		RPOrigins:     []string{u.Scheme + "://" + u.Host},
	})
	if err != nil {
		return nil
	}
	return w
}

// PasskeysOffered reports whether people may enrol and use passkeys.
func (s *Service) PasskeysOffered() bool { return s.Offered() && s.wa != nil }

// waUser is a Flowgate user as the WebAuthn library sees it.
type waUser struct {
	name  string
	creds []webauthn.Credential
}

func (u *waUser) WebAuthnID() []byte                         { return userHandle(u.name) }
func (u *waUser) WebAuthnName() string                       { return u.name }
func (u *waUser) WebAuthnDisplayName() string                { return u.name }
func (u *waUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// userHandle is the WebAuthn user handle of user: a digest, so the
// authenticator does not hold the username in its user ID field, and
// the same for one user always (a discoverable sign-in checks it).
func userHandle(user string) []byte {
	h := sha256.Sum256([]byte("flowgate passkey user\x00" + user))
	return h[:]
}

// loadUser reads user's passkeys as the library's credentials.
func (s *Service) loadUser(ctx context.Context, user string) (*waUser, error) {
	list, err := s.opts.Store.ListPasskeys(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	u := &waUser{name: user}
	for _, p := range list {
		var c webauthn.Credential
		if err := json.Unmarshal(p.Credential, &c); err != nil {
			return nil, fmt.Errorf("mfa: passkey record of %q: %w", user, err)
		}
		u.creds = append(u.creds, c)
	}
	return u, nil
}

// HasPasskeys reports whether user has registered a passkey.
func (s *Service) HasPasskeys(ctx context.Context, user string) (bool, error) {
	list, err := s.opts.Store.ListPasskeys(ctx, user)
	if err != nil {
		return false, fmt.Errorf("mfa: %w", err)
	}
	return len(list) > 0, nil
}

// Passkeys lists user's passkeys, oldest first.
func (s *Service) Passkeys(ctx context.Context, user string) ([]Passkey, error) {
	list, err := s.opts.Store.ListPasskeys(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	out := make([]Passkey, 0, len(list))
	for _, p := range list {
		out = append(out, Passkey{ID: base64.RawURLEncoding.EncodeToString(p.ID), Name: p.Name, CreatedAt: p.CreatedAt, LastUsedAt: p.LastUsedAt})
	}
	return out, nil
}

// saveCeremony keeps a ceremony's state and returns its handle.
func (s *Service) saveCeremony(ctx context.Context, sd *webauthn.SessionData) (string, error) {
	b, err := json.Marshal(sd)
	if err != nil {
		return "", fmt.Errorf("mfa: %w", err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("mfa: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(raw)
	if err := s.opts.Store.PutPasskeyChallenge(ctx, id, b, s.opts.Now().Add(ceremonyTTL)); err != nil {
		return "", fmt.Errorf("mfa: %w", err)
	}
	return id, nil
}

// sealedPrefix marks a ceremony handle that carries its state sealed.
const sealedPrefix = "s."

// ceremonyAAD binds sealed ceremony states to their purpose.
var ceremonyAAD = []byte("flowgate passkey sign-in ceremony")

// sealCeremony returns a handle carrying the ceremony's state, sealed
// with the server's keys and expiring with the ceremony.
func (s *Service) sealCeremony(sd *webauthn.SessionData) (string, error) {
	sd.Expires = s.opts.Now().Add(ceremonyTTL)
	b, err := json.Marshal(sd)
	if err != nil {
		return "", fmt.Errorf("mfa: %w", err)
	}
	sealed, err := s.opts.Ring.Seal(b, ceremonyAAD)
	if err != nil {
		return "", fmt.Errorf("mfa: %w", err)
	}
	return sealedPrefix + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// openCeremony reads a sealed ceremony's state; a handle that was not
// sealed here, or has expired, is refused.
func (s *Service) openCeremony(handle string) (webauthn.SessionData, error) {
	var sd webauthn.SessionData
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(handle, sealedPrefix))
	if err != nil {
		return sd, fmt.Errorf("%w: no such ceremony", ErrPasskeyRefused)
	}
	b, err := s.opts.Ring.Open(raw, ceremonyAAD)
	if err != nil {
		return sd, fmt.Errorf("%w: no such ceremony", ErrPasskeyRefused)
	}
	if err := json.Unmarshal(b, &sd); err != nil {
		return sd, fmt.Errorf("%w: no such ceremony", ErrPasskeyRefused)
	}
	if !s.opts.Now().Before(sd.Expires) {
		return sd, fmt.Errorf("%w: the ceremony expired", ErrPasskeyRefused)
	}
	return sd, nil
}

// usedCeremonyID names the record of a sealed ceremony's use.
func usedCeremonyID(challenge string) string {
	sum := sha256.Sum256([]byte(challenge))
	return "used." + base64.RawURLEncoding.EncodeToString(sum[:])
}

// takeCeremony takes a ceremony's state, once.
func (s *Service) takeCeremony(ctx context.Context, id string) (webauthn.SessionData, error) {
	var sd webauthn.SessionData
	b, err := s.opts.Store.TakePasskeyChallenge(ctx, id, s.opts.Now())
	if errors.Is(err, store.ErrNotFound) {
		return sd, fmt.Errorf("%w: no such ceremony, or it expired or was used", ErrPasskeyRefused)
	}
	if err != nil {
		return sd, fmt.Errorf("mfa: %w", err)
	}
	if err := json.Unmarshal(b, &sd); err != nil {
		return sd, fmt.Errorf("mfa: %w", err)
	}
	return sd, nil
}

// BeginPasskeyEnrol starts registering a passkey for user. It returns
// the ceremony's handle and the options for navigator.credentials.create
// as JSON. The passkey is discoverable, so it can also sign in alone.
func (s *Service) BeginPasskeyEnrol(ctx context.Context, user string) (string, []byte, error) {
	if !s.PasskeysOffered() {
		return "", nil, ErrPasskeysOff
	}
	u, err := s.loadUser(ctx, user)
	if err != nil {
		return "", nil, err
	}
	creation, sd, err := s.wa.BeginRegistration(u,
		webauthn.WithExclusions(webauthn.Credentials(u.creds).CredentialDescriptors()),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
	)
	if err != nil {
		return "", nil, fmt.Errorf("mfa: begin passkey registration: %w", err)
	}
	id, err := s.saveCeremony(ctx, sd)
	if err != nil {
		return "", nil, err
	}
	b, err := json.Marshal(creation)
	if err != nil {
		return "", nil, fmt.Errorf("mfa: %w", err)
	}
	return id, b, nil
}

// FinishPasskeyEnrol checks the browser's answer (the JSON of the
// PublicKeyCredential) to the ceremony ceremony and stores the passkey
// under name. It is audited.
func (s *Service) FinishPasskeyEnrol(ctx context.Context, user, ceremony, name string, answer []byte) error {
	if !s.PasskeysOffered() {
		return ErrPasskeysOff
	}
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > MaxPasskeyName {
		return ErrBadPasskeyName
	}
	sd, err := s.takeCeremony(ctx, ceremony)
	if err != nil {
		return err
	}
	u, err := s.loadUser(ctx, user)
	if err != nil {
		return err
	}
	if !bytes.Equal(sd.UserID, u.WebAuthnID()) {
		return fmt.Errorf("%w: the ceremony was started for another user", ErrPasskeyRefused)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(answer)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPasskeyRefused, err)
	}
	cred, err := s.wa.CreateCredential(u, sd, parsed)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPasskeyRefused, err)
	}
	rec, err := json.Marshal(cred)
	if err != nil {
		return fmt.Errorf("mfa: %w", err)
	}
	if err := s.opts.Store.AddPasskey(ctx, store.Passkey{ID: cred.ID, User: user, Name: name, PublicKey: cred.PublicKey,
		SignCount: cred.Authenticator.SignCount, Credential: rec, CreatedAt: s.opts.Now()}); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("%w: this passkey is already registered", ErrPasskeyRefused)
		}
		return fmt.Errorf("mfa: %w", err)
	}
	audit.Change{Event: audit.UserMFAEnrolled, By: "user:" + user, Detail: "user " + user + ": passkey " + name}.Record(ctx, s.opts.Auditor)
	return nil
}

// RemovePasskey removes user's passkey id (base64url); false when the
// user has no such passkey. It is audited.
func (s *Service) RemovePasskey(ctx context.Context, user, id string) (bool, error) {
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(raw) == 0 {
		return false, nil
	}
	removed, err := s.opts.Store.DeletePasskey(ctx, user, raw)
	if err != nil {
		return false, fmt.Errorf("mfa: %w", err)
	}
	if removed {
		audit.Change{Event: audit.UserPasskeyRemoved, By: "user:" + user, Detail: "user " + user + ": a passkey"}.Record(ctx, s.opts.Auditor)
	}
	return removed, nil
}

// BeginPasskeyLogin starts a sign-in with a passkey: of user (the second
// step after the password), or of whoever the passkey names when user is
// empty (a passkey alone). It returns the ceremony's handle and the
// options for navigator.credentials.get as JSON.
func (s *Service) BeginPasskeyLogin(ctx context.Context, user string) (string, []byte, error) {
	if !s.PasskeysOffered() {
		return "", nil, ErrPasskeysOff
	}
	var (
		assertion *protocol.CredentialAssertion
		sd        *webauthn.SessionData
		err       error
	)
	if user == "" {
		assertion, sd, err = s.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	} else {
		u, lerr := s.loadUser(ctx, user)
		if lerr != nil {
			return "", nil, lerr
		}
		if len(u.creds) == 0 {
			return "", nil, ErrNotEnrolled
		}
		assertion, sd, err = s.wa.BeginLogin(u)
	}
	if err != nil {
		return "", nil, fmt.Errorf("mfa: begin passkey sign-in: %w", err)
	}
	var id string
	if user == "" {
		// The sign-in page offers this to whoever opens it: its state
		// travels sealed in the handle rather than as a row per page
		// view, which anyone could make by the million.
		id, err = s.sealCeremony(sd)
	} else {
		id, err = s.saveCeremony(ctx, sd)
	}
	if err != nil {
		return "", nil, err
	}
	b, err := json.Marshal(assertion)
	if err != nil {
		return "", nil, fmt.Errorf("mfa: %w", err)
	}
	return id, b, nil
}

// FinishPasskeyLogin checks the browser's answer to a sign-in ceremony.
// user is who the password proved, or empty for a passkey alone. It
// returns who signed in and the amr of the passkey: "hwk" for a key
// bound to its device, "swk" for one that can be copied (synced), each
// with "mfa" when the authenticator verified the person too (a passkey
// alone is possession and a PIN or biometric), and for the second step
// always (the password is the other factor).
func (s *Service) FinishPasskeyLogin(ctx context.Context, user, ceremony string, answer []byte) (string, []string, error) {
	if !s.PasskeysOffered() {
		return "", nil, ErrPasskeysOff
	}
	var sd webauthn.SessionData
	var err error
	sealed := strings.HasPrefix(ceremony, sealedPrefix)
	if sealed {
		sd, err = s.openCeremony(ceremony)
	} else {
		sd, err = s.takeCeremony(ctx, ceremony)
	}
	if err != nil {
		return "", nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(answer)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrPasskeyRefused, err)
	}
	var cred *webauthn.Credential
	if user == "" {
		if len(sd.UserID) != 0 {
			return "", nil, fmt.Errorf("%w: not a discoverable ceremony", ErrPasskeyRefused)
		}
		var wu webauthn.User
		wu, cred, err = s.wa.ValidatePasskeyLogin(func(rawID, handle []byte) (webauthn.User, error) {
			p, err := s.opts.Store.GetPasskey(ctx, rawID)
			if err != nil {
				return nil, err
			}
			return s.loadUser(ctx, p.User)
		}, sd, parsed)
		if err == nil {
			user = wu.WebAuthnName()
		}
	} else {
		var u *waUser
		if u, err = s.loadUser(ctx, user); err != nil {
			return "", nil, err
		}
		if !bytes.Equal(sd.UserID, u.WebAuthnID()) {
			return "", nil, fmt.Errorf("%w: the ceremony was started for another user", ErrPasskeyRefused)
		}
		cred, err = s.wa.ValidateLogin(u, sd, parsed)
	}
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrPasskeyRefused, err)
	}
	if cred.Authenticator.CloneWarning {
		return "", nil, fmt.Errorf("%w: its signature counter went back, it may be cloned", ErrPasskeyRefused)
	}
	if sealed {
		// A sealed ceremony is not taken from the store, so its use is
		// recorded instead, once its answer has proved a passkey: the
		// same answer again (a synced passkey's counter stays 0) is
		// refused, and only real sign-ins write.
		if err := s.opts.Store.PutPasskeyChallenge(ctx, usedCeremonyID(sd.Challenge), []byte{}, sd.Expires); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return "", nil, fmt.Errorf("%w: this ceremony was used already", ErrPasskeyRefused)
			}
			return "", nil, fmt.Errorf("mfa: %w", err)
		}
	}
	rec, err := json.Marshal(cred)
	if err != nil {
		return "", nil, fmt.Errorf("mfa: %w", err)
	}
	if err := s.opts.Store.UsePasskey(ctx, cred.ID, cred.Authenticator.SignCount, rec, s.opts.Now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", nil, fmt.Errorf("%w: removed meanwhile", ErrPasskeyRefused)
		}
		return "", nil, fmt.Errorf("mfa: %w", err)
	}
	kind := "hwk"
	if cred.Flags.BackupEligible {
		kind = "swk"
	}
	amr := []string{kind}
	if len(sd.UserID) != 0 || parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		amr = append(amr, "mfa")
	}
	return user, amr, nil
}
