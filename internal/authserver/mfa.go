package authserver

import (
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/mfa"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/throttle"
)

// The second step of a password sign-in (docs/security.md, "Second
// factor").
const (
	PathLoginMFA         = "/login/mfa"
	PathLoginMFAQR       = "/login/mfa/qr.png"
	PathLoginMFAContinue = "/login/mfa/continue"
	// PathLoginMFAPasskey is where the second step with a passkey posts.
	PathLoginMFAPasskey = "/login/mfa/passkey"
	// PathLoginPasskey is where a sign-in with a passkey alone posts.
	PathLoginPasskey = "/login/passkey"
	// PathPasskeyScript is the passkey pages' one script, served from
	// here so the pages' CSP allows script from 'self' only.
	PathPasskeyScript = "/assets/passkeys.js"
	mfaCookie         = "flowgate_mfa"
	// mfaStepTTL bounds how long a checked password waits for its second
	// factor.
	mfaStepTTL = 5 * time.Minute
)

// mfaPending is a sign-in between its password and its second factor. It
// travels in a cookie sealed with the key ring: the browser can neither
// read nor change it, and it names the user only the password proved.
type mfaPending struct {
	User     string `json:"u"`
	Request  string `json:"r,omitempty"`
	ReturnTo string `json:"t,omitempty"`
	// Need is "verify" (a code) or "enrol" (enrolment first).
	Need    string `json:"n"`
	Expires int64  `json:"e"`
}

var mfaCookieAAD = []byte(mfaCookie)

//go:embed assets/passkeys.js
var passkeyJS []byte

// MFA returns the second-factor service the sign-in uses, for the account
// page and the administrators' reset.
func (s *Server) MFA() *mfa.Service { return s.mfa }

// mfaNeeded says what a password sign-in of user needs before it is
// complete: "" (nothing), "verify" or "enrol".
func (s *Server) mfaNeeded(r *http.Request, user string, req *store.AuthRequest) (string, error) {
	asked := req != nil && slices.Contains(req.ACRValues, mfa.ACRMFA)
	return s.mfa.Needed(r.Context(), user, asked)
}

// startMFAStep sets the pending cookie and sends the browser to the
// second step.
func (s *Server) startMFAStep(w http.ResponseWriter, r *http.Request, p mfaPending) error {
	p.Expires = s.now().Add(mfaStepTTL).Unix()
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	sealed, err := s.opts.Ring.Seal(b, mfaCookieAAD)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: mfaCookie, Value: base64.RawURLEncoding.EncodeToString(sealed), Path: PathLogin,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode, MaxAge: int(mfaStepTTL / time.Second)})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, PathLoginMFA, http.StatusSeeOther)
	return nil
}

// pendingMFA reads the pending cookie; false (and an error page) when
// there is none or it has expired.
func (s *Server) pendingMFA(w http.ResponseWriter, r *http.Request) (mfaPending, bool) {
	var p mfaPending
	c, err := r.Cookie(mfaCookie)
	if err == nil {
		var sealed, b []byte
		if sealed, err = base64.RawURLEncoding.DecodeString(c.Value); err == nil {
			if b, err = s.opts.Ring.Open(sealed, mfaCookieAAD); err == nil {
				err = json.Unmarshal(b, &p)
			}
		}
	}
	if err != nil || p.User == "" || s.now().Unix() > p.Expires {
		s.errorPage(w, http.StatusBadRequest, "This sign-in has expired. Sign in again.", "no pending second-factor step")
		return mfaPending{}, false
	}
	return p, true
}

func (s *Server) clearMFACookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: mfaCookie, Value: "", Path: PathLogin, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// mfaPage is GET /login/mfa: the code form, or for a user who must enrol
// first, the QR code, the secret and the confirming code form. Reloading
// keeps the enrolment in progress.
func (s *Server) mfaPage(w http.ResponseWriter, r *http.Request) {
	p, ok := s.pendingMFA(w, r)
	if !ok {
		return
	}
	d := pageData{Title: "Second factor", CSRF: s.csrfToken(w, r), Username: p.User}
	if p.Need == "enrol" {
		secret, err := s.mfa.Pending(r.Context(), p.User)
		if errors.Is(err, mfa.ErrNotEnrolled) {
			secret, err = s.mfa.Begin(r.Context(), p.User)
		}
		if err != nil {
			s.logger.Error("login: starting an enrolment", "err", err)
			s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
			return
		}
		d.Title, d.Enrol, d.Secret = "Set up a second factor", true, secret
	} else if !s.offerPasskey(w, r, p.User, &d) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, http.StatusOK, "mfa", d)
}

// offerPasskey fills in the code and passkey parts of the second step:
// the code form for a user with an authenticator app, and a fresh
// passkey ceremony for a user with passkeys. False (and an error page)
// when that fails.
func (s *Server) offerPasskey(w http.ResponseWriter, r *http.Request, user string, d *pageData) bool {
	ctx := r.Context()
	hasTOTP, err := s.mfa.HasTOTP(ctx, user)
	if err == nil && s.mfa.PasskeysOffered() {
		var has bool
		if has, err = s.mfa.HasPasskeys(ctx, user); err == nil && has {
			var opts []byte
			if d.PasskeyCeremony, opts, err = s.mfa.BeginPasskeyLogin(ctx, user); err == nil {
				d.PasskeyOptions, d.Script = string(opts), PathPasskeyScript
			}
		}
	}
	if err != nil {
		s.logger.Error("login: offering a passkey", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
		return false
	}
	d.NoCode = !hasTOTP
	return true
}

// servePasskeyScript serves the passkey pages' script.
func servePasskeyScript(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(passkeyJS)
}

// mfaPasskeySubmit is POST /login/mfa/passkey: the second step with a
// passkey. A refused passkey counts as a failed sign-in in the throttle,
// like a wrong code.
func (s *Server) mfaPasskeySubmit(w http.ResponseWriter, r *http.Request) {
	if !s.postedForm(w, r) {
		return
	}
	p, ok := s.pendingMFA(w, r)
	if !ok {
		return
	}
	if p.Need != "verify" {
		s.errorPage(w, http.StatusBadRequest, "This sign-in has expired. Sign in again.", "no passkey step pending")
		return
	}
	ctx := r.Context()
	client := &store.Client{Name: "Flowgate"}
	var req *store.AuthRequest
	if p.Request != "" {
		if req, client, ok = s.pendingRequest(w, r, p.Request); !ok {
			return
		}
	}
	attempt, err := s.limits.Begin(ctx, p.User, remoteIP(r))
	if err != nil {
		s.logger.Error("login: reading the sign-in throttle", "err", err)
		s.errorPage(w, http.StatusServiceUnavailable, "Sign-in is unavailable right now.", "")
		return
	}
	defer attempt.End()
	d := pageData{Title: "Second factor", CSRF: s.csrfToken(w, r), Username: p.User}
	if wait := attempt.Wait; wait > 0 {
		s.audit(ctx, r, store.AuditEvent{Event: audit.LoginFailure, User: p.User, Client: client.ID, Outcome: audit.OutcomeFailure, Detail: "rate limited"})
		d.Error = fmt.Sprintf("Too many attempts, wait %d seconds.", waitSeconds(wait))
		if s.offerPasskey(w, r, p.User, &d) {
			s.render(w, http.StatusTooManyRequests, "mfa", d)
		}
		return
	}
	_, amr, err := s.mfa.FinishPasskeyLogin(ctx, p.User, truncate(r.PostForm.Get("ceremony"), 128), []byte(truncate(r.PostForm.Get("credential"), 64<<10)))
	if errors.Is(err, mfa.ErrPasskeyRefused) || errors.Is(err, mfa.ErrPasskeysOff) {
		if err := attempt.Fail(ctx); err != nil {
			s.logger.Error("login: recording a failed sign-in", "err", err)
		}
		s.logger.Info("login: passkey refused", "user", p.User, "err", err)
		s.audit(ctx, r, store.AuditEvent{Event: audit.LoginFailure, User: p.User, Client: client.ID, Outcome: audit.OutcomeFailure, Detail: "passkey refused"})
		d.Error = "That passkey was not accepted. Try again, or use another one."
		if s.offerPasskey(w, r, p.User, &d) {
			s.render(w, http.StatusUnauthorized, "mfa", d)
		}
		return
	}
	if err != nil {
		s.logger.Error("login: checking a passkey", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
		return
	}
	s.completeMFA(w, r, p, req, client, attempt, append([]string{"pwd"}, amr...), nil, d.CSRF)
}

// mfaQR is GET /login/mfa/qr.png: the enrolment's QR code, as an image of
// this server (the pages' CSP allows no data: images).
func (s *Server) mfaQR(w http.ResponseWriter, r *http.Request) {
	p, ok := s.pendingMFA(w, r)
	if !ok {
		return
	}
	if p.Need != "enrol" {
		http.NotFound(w, r)
		return
	}
	ServeQRCode(w, r, s.mfa, p.User)
}

// ServeQRCode answers with the PNG QR code of user's enrolment in
// progress (404 when there is none), never cached.
func ServeQRCode(w http.ResponseWriter, r *http.Request, m *mfa.Service, user string) {
	png, err := m.QRCode(r.Context(), user)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(png)
}

// mfaSubmit is POST /login/mfa: the code (or a recovery code), or the
// enrolment's confirming code. Wrong codes count as failed sign-ins in
// the throttle; the sign-in completes only here.
func (s *Server) mfaSubmit(w http.ResponseWriter, r *http.Request) {
	if !s.postedForm(w, r) {
		return
	}
	p, ok := s.pendingMFA(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	client := &store.Client{Name: "Flowgate"}
	var req *store.AuthRequest
	if p.Request != "" {
		if req, client, ok = s.pendingRequest(w, r, p.Request); !ok {
			return
		}
	}
	d := pageData{Title: "Second factor", CSRF: s.csrfToken(w, r), Username: p.User}
	if p.Need == "enrol" {
		d.Title, d.Enrol = "Set up a second factor", true
		d.Secret, _ = s.mfa.Pending(ctx, p.User)
	}
	attempt, err := s.limits.Begin(ctx, p.User, remoteIP(r))
	if err != nil {
		s.logger.Error("login: reading the sign-in throttle", "err", err)
		s.errorPage(w, http.StatusServiceUnavailable, "Sign-in is unavailable right now.", "")
		return
	}
	defer attempt.End()
	if wait := attempt.Wait; wait > 0 {
		s.audit(ctx, r, store.AuditEvent{Event: audit.LoginFailure, User: p.User, Client: client.ID, Outcome: audit.OutcomeFailure, Detail: "rate limited"})
		d.Error = fmt.Sprintf("Too many attempts, wait %d seconds.", waitSeconds(wait))
		s.render(w, http.StatusTooManyRequests, "mfa", d)
		return
	}
	code := truncate(r.PostForm.Get("code"), 64)
	var (
		amr      []string
		recovery []string
	)
	if p.Need == "enrol" {
		recovery, err = s.mfa.Confirm(ctx, p.User, code)
		amr = []string{"otp", "mfa"}
	} else {
		amr, err = s.mfa.Verify(ctx, p.User, code)
	}
	if errors.Is(err, mfa.ErrWrongCode) {
		if err := attempt.Fail(ctx); err != nil {
			s.logger.Error("login: recording a failed sign-in", "err", err)
		}
		s.audit(ctx, r, store.AuditEvent{Event: audit.LoginFailure, User: p.User, Client: client.ID, Outcome: audit.OutcomeFailure, Detail: "wrong second-factor code"})
		d.Error = "That code is not right, or was already used. Try the next one."
		s.render(w, http.StatusUnauthorized, "mfa", d)
		return
	}
	if err != nil {
		s.logger.Error("login: checking a second factor", "err", err)
		s.errorPage(w, http.StatusBadRequest, "This sign-in has expired. Sign in again.", "no second factor to check")
		return
	}
	s.completeMFA(w, r, p, req, client, attempt, append([]string{"pwd"}, amr...), recovery, d.CSRF)
}

// completeMFA ends a sign-in whose second factor was checked: the
// session, the authorization request, the audit record, and then the
// recovery codes of a new enrolment or on to where the sign-in goes.
func (s *Server) completeMFA(w http.ResponseWriter, r *http.Request, p mfaPending, req *store.AuthRequest, client *store.Client, attempt *throttle.Attempt, amr, recovery []string, csrf string) {
	ctx := r.Context()
	now := s.now()
	if err := s.startSession(w, r, p.User, now, amr); err != nil {
		s.logger.Error("login: creating session", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
		return
	}
	s.clearMFACookie(w)
	if err := attempt.Succeed(ctx); err != nil {
		s.logger.Error("login: clearing failed sign-ins", "err", err)
	}
	next := p.ReturnTo
	if req != nil {
		if err := s.st.CompleteAuthRequest(ctx, req.ID, p.User, now, amr); err != nil {
			s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
			return
		}
		req.User, req.AuthTime, req.AMR, req.Done = p.User, now, amr, true
	}
	s.audit(ctx, r, store.AuditEvent{Event: audit.LoginSuccess, User: p.User, Client: client.ID, Outcome: audit.OutcomeSuccess, Detail: "with a second factor"})
	if recovery != nil {
		// The recovery codes are shown once, here; "Continue" goes on
		// where the sign-in was going.
		w.Header().Set("Cache-Control", "no-store")
		s.render(w, http.StatusOK, "recovery-codes", pageData{Title: "Your recovery codes", CSRF: csrf, Username: p.User,
			Codes: recovery, Request: p.Request, ReturnTo: p.ReturnTo, Action: PathLoginMFAContinue})
		return
	}
	if req != nil {
		next = s.afterLogin(ctx, req, client)
	}
	redirect(w, r, next)
}

// mfaContinue is POST /login/mfa/continue, after the recovery codes of an
// enrolment at sign-in: on to consent or the client, or to return_to.
func (s *Server) mfaContinue(w http.ResponseWriter, r *http.Request) {
	if !s.postedForm(w, r) {
		return
	}
	if id := r.PostForm.Get("request"); id != "" {
		req, client, ok := s.sessionRequest(w, r, id)
		if !ok {
			return
		}
		redirect(w, r, s.afterLogin(r.Context(), req, client))
		return
	}
	ret, ok := SafeReturnPath(r.PostForm.Get("return_to"))
	if !ok {
		ret = "/"
	}
	redirect(w, r, ret)
}

// mfaSatisfied reports whether a session's sign-in meets a request that
// asks for a second factor: one was used, or the person signed in
// through an identity provider (whose own factors Flowgate relies on).
func mfaSatisfied(amr []string) bool {
	return slices.Contains(amr, "mfa") || slices.Contains(amr, "fed")
}

// loginPasskey is POST /login/passkey: a sign-in with a passkey alone
// (a discoverable credential names its user). A passkey whose
// authenticator verified the person (PIN or biometric) is two factors;
// one that did not is refused where a second factor is needed.
func (s *Server) loginPasskey(w http.ResponseWriter, r *http.Request) {
	if !s.postedForm(w, r) {
		return
	}
	req, client, returnTo, ok := s.loginTarget(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	if s.auditUnavailable() != nil {
		s.errorPage(w, http.StatusServiceUnavailable, "Sign-in is unavailable right now. Try again in a minute.", "the audit log cannot be written")
		return
	}
	page := pageData{Title: "Sign in", Client: clientName(client), ReturnTo: returnTo}
	if req != nil {
		page.Request = req.ID
	}
	refuse := func(user, detail string) {
		s.audit(ctx, r, store.AuditEvent{Event: audit.LoginFailure, User: user, Client: client.ID, Outcome: audit.OutcomeFailure, Detail: detail})
		page = s.loginData(w, r, page)
		page.Error = "That passkey was not accepted."
		s.render(w, http.StatusUnauthorized, "login", page)
	}
	user, amr, err := s.mfa.FinishPasskeyLogin(ctx, "", truncate(r.PostForm.Get("ceremony"), 1024), []byte(truncate(r.PostForm.Get("credential"), 64<<10)))
	if errors.Is(err, mfa.ErrPasskeyRefused) || errors.Is(err, mfa.ErrPasskeysOff) {
		s.logger.Info("login: passkey refused", "err", err)
		refuse("", "passkey refused")
		return
	}
	if err != nil {
		s.logger.Error("login: checking a passkey", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
		return
	}
	u, err := s.st.GetUser(ctx, user)
	if err != nil || u.Disabled {
		refuse(user, "user disabled")
		return
	}
	if !slices.Contains(amr, "mfa") {
		need, err := s.mfaNeeded(r, user, req)
		if err != nil {
			s.logger.Error("login: reading second factors", "err", err)
			s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
			return
		}
		if need != "" {
			refuse(user, "passkey without user verification where a second factor is needed")
			return
		}
	}
	now := s.now()
	if err := s.startSession(w, r, user, now, amr); err != nil {
		s.logger.Error("login: creating session", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
		return
	}
	if req == nil {
		s.audit(ctx, r, store.AuditEvent{Event: audit.LoginSuccess, User: user, Outcome: audit.OutcomeSuccess, Detail: "with a passkey"})
		redirect(w, r, returnTo)
		return
	}
	if err := s.st.CompleteAuthRequest(ctx, req.ID, user, now, amr); err != nil {
		s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
		return
	}
	s.audit(ctx, r, store.AuditEvent{Event: audit.LoginSuccess, User: user, Client: client.ID, Outcome: audit.OutcomeSuccess, Detail: "with a passkey"})
	req.User, req.AuthTime, req.AMR, req.Done = user, now, amr, true
	redirect(w, r, s.afterLogin(ctx, req, client))
}
