package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/account"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/store"
)

// The users pages: /admin/users (list, create) and /admin/users/{username}
// (profile and roles, password, disable / enable, end sessions). Each
// change is the account package's, as the admin API's is.

func userPath(name string) string { return "/admin/users/" + url.PathEscape(name) }

// userForm is the profile form: for a new user with username and
// password, for an existing one without.
func userForm(u store.User, isNew bool) *idForm {
	f := &idForm{Action: userPath(u.Username), Submit: "Save", Heading: "Profile and roles"}
	if isNew {
		f = &idForm{Action: "/admin/users", Submit: "Create user", Heading: "New user"}
		f.Inputs = append(f.Inputs, &input{Name: "username", Label: "Username", Kind: "text", Required: true, Value: u.Username,
			Hint: "Letters, digits and . _ @ -; cannot be changed later."})
	}
	f.Inputs = append(f.Inputs,
		&input{Name: "name", Label: "Name", Kind: "text", Value: u.Name},
		&input{Name: "email", Label: "Email", Kind: "email", Value: u.Email},
		&input{Name: "roles", Label: "Roles", Kind: "text", Value: strings.Join(u.Roles, " "), Hint: "Separated by spaces or commas; admin makes an administrator."},
	)
	if isNew {
		f.Inputs = append(f.Inputs, &input{Name: "password", Label: "Password", Kind: "password",
			Hint: "8 to 1024 characters; leave empty for a user who does not sign in with a password."})
	}
	return f
}

// readUserForm copies the posted profile onto u and checks it with the
// configuration's rules, marking the form; the email stops being
// verified when it changes.
func readUserForm(r *http.Request, f *idForm, u *store.User) {
	f.input("name").Value = r.PostForm.Get("name")
	f.input("email").Value = r.PostForm.Get("email")
	f.input("roles").Value = r.PostForm.Get("roles")
	email := strings.TrimSpace(r.PostForm.Get("email"))
	if email != u.Email {
		u.EmailVerified = false
	}
	u.Name, u.Email, u.Roles = strings.TrimSpace(r.PostForm.Get("name")), email, words(r.PostForm.Get("roles"))
	if err := (config.User{Username: u.Username, Email: u.Email, Name: u.Name, Roles: u.Roles}).Validate(); err != nil {
		f.failAll(err)
	}
}

func (h *Handler) adminUsers(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil {
		return
	}
	h.usersPage(w, r, u, http.StatusOK, userForm(store.User{}, true))
}

func (h *Handler) usersPage(w http.ResponseWriter, r *http.Request, u *user, status int, create *idForm) {
	users, next, err := h.o.Identity.Store.ListUsers(r.Context(), listCursor(r))
	if err != nil {
		h.pageError(w, u, "listing users", err)
		return
	}
	lp := &listPage{Columns: []string{"Username", "Name", "Email", "Roles", "Status"}, Empty: "No users yet.",
		Next: nextLink("/admin/users", next), Create: create}
	for _, x := range users {
		status := "enabled"
		if x.Disabled {
			status = "disabled"
		}
		lp.add(userPath(x.Username), x.Username, x.Name, x.Email, strings.Join(x.Roles, ", "), status)
	}
	h.renderID(w, status, u, "admin/users", "Users", notice(r), idPage{List: lp})
}

func (h *Handler) adminCreateUser(w http.ResponseWriter, r *http.Request) {
	u, ctx := h.adminPost(w, r)
	if u == nil {
		return
	}
	now := time.Now().UTC()
	nu := store.User{Username: strings.TrimSpace(r.PostForm.Get("username")), CreatedAt: now, UpdatedAt: now}
	f := userForm(nu, true)
	readUserForm(r, f, &nu)
	if nu.Username == "" {
		f.input("username").Error = "is required"
	}
	pw := r.PostForm.Get("password")
	if pw != "" {
		if err := account.CheckPassword(pw); err != nil {
			f.fail("password", err.Error())
		}
	}
	if f.failed() {
		h.usersPage(w, r, u, http.StatusBadRequest, f)
		return
	}
	if pw != "" {
		hash, err := h.o.Identity.Hasher.Hash(pw)
		if err != nil {
			h.pageError(w, u, "hashing a password", err)
			return
		}
		nu.PasswordHash = hash
	}
	if err := account.Create(ctx, h.o.Identity.Store, h.o.Identity.Audit, u.who(), nu); err != nil {
		if status, ok := h.storeFailure(w, u, f, "username", err); ok {
			h.usersPage(w, r, u, status, f)
		}
		return
	}
	redirectDone(w, r, userPath(nu.Username), "created")
}

// adminUserPage is GET /admin/users/{username}.
func (h *Handler) adminUserPage(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil {
		return
	}
	target, ok := h.readUser(w, r, u)
	if !ok {
		return
	}
	msg := notice(r)
	if r.URL.Query().Get("removed") == "1" {
		msg = "The link was removed."
	}
	h.userPage(w, r, u, http.StatusOK, msg, target, nil, nil)
}

// readUser reads the user of the path, answering 404 when there is none.
func (h *Handler) readUser(w http.ResponseWriter, r *http.Request, u *user) (store.User, bool) {
	target, err := h.o.Identity.Store.GetUser(r.Context(), r.PathValue("username"))
	if errors.Is(err, store.ErrNotFound) {
		h.notFound(w, u)
		return store.User{}, false
	}
	if err != nil {
		h.pageError(w, u, "reading a user", err)
		return store.User{}, false
	}
	return target, true
}

// userPage shows one user; profile or password, when given, are the
// forms as posted, with their problems.
func (h *Handler) userPage(w http.ResponseWriter, r *http.Request, u *user, status int, notice string, t store.User, profile, password *idForm) {
	links, err := h.userLinks(r.Context(), u, t.Username, true)
	if err != nil {
		h.pageError(w, u, "listing sign-in links", err)
		return
	}
	if profile == nil {
		profile = userForm(t, false)
	}
	if password == nil {
		password = &idForm{Heading: "Reset password", Action: userPath(t.Username) + "/password", Submit: "Set password",
			Inputs: []*input{{Name: "new_password", Label: "New password", Kind: "password", Required: true, Hint: "8 to 1024 characters."}}}
	}
	state, pw := "enabled", "not set"
	if t.Disabled {
		state = "disabled"
	}
	if t.PasswordHash != "" {
		pw = "set"
	}
	ep := &editPage{
		Facts: []fact{{"Username", t.Username}, {"Status", state}, {"Password", pw},
			{"Created", stampOf(t.CreatedAt)}, {"Updated", stampOf(t.UpdatedAt)}},
		Forms: []*idForm{profile, password},
		Back:  link{"/admin/users", "All users"},
		Links: links,
	}
	if t.Disabled {
		ep.Buttons = append(ep.Buttons, &idForm{Action: userPath(t.Username) + "/enable", Submit: "Enable", Hint: "The user may sign in again."})
	} else {
		ep.Buttons = append(ep.Buttons, &idForm{Action: userPath(t.Username) + "/disable", Submit: "Disable",
			Hint: "The user can no longer sign in; their sessions end and their refresh tokens are revoked."})
	}
	ep.Buttons = append(ep.Buttons, &idForm{Action: userPath(t.Username) + "/sessions", Submit: "End sessions",
		Hint: "Signs the user out everywhere and revokes their refresh tokens; they may sign in again."})
	if h.o.Identity.MFA != nil {
		ep.Buttons = append(ep.Buttons, &idForm{Action: userPath(t.Username) + "/mfa/reset", Submit: "Reset second factor",
			Hint: "Removes the user's authenticator app and recovery codes, for someone who lost them; they set one up again (at their next sign-in when a second factor is required)."})
	}
	h.renderID(w, status, u, "admin/users", "User "+t.Username, notice, idPage{Edit: ep})
}

func stampOf(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func (h *Handler) adminUpdateUser(w http.ResponseWriter, r *http.Request) {
	u, ctx := h.adminPost(w, r)
	if u == nil {
		return
	}
	cur, ok := h.readUser(w, r, u)
	if !ok {
		return
	}
	next := cur
	f := userForm(cur, false)
	readUserForm(r, f, &next)
	if f.failed() {
		h.userPage(w, r, u, http.StatusBadRequest, "", cur, f, nil)
		return
	}
	if _, err := account.Update(ctx, h.o.Identity.Store, h.o.Identity.Audit, u.who(), cur, next); err != nil {
		if status, ok := h.storeFailure(w, u, f, "username", err); ok {
			h.userPage(w, r, u, status, "", cur, f, nil)
		}
		return
	}
	redirectDone(w, r, userPath(cur.Username), "saved")
}

func (h *Handler) adminSetPassword(w http.ResponseWriter, r *http.Request) {
	u, ctx := h.adminPost(w, r)
	if u == nil {
		return
	}
	cur, ok := h.readUser(w, r, u)
	if !ok {
		return
	}
	pw := r.PostForm.Get("new_password")
	if err := account.CheckPassword(pw); err != nil {
		f := &idForm{Heading: "Reset password", Action: userPath(cur.Username) + "/password", Submit: "Set password",
			Inputs: []*input{{Name: "new_password", Label: "New password", Kind: "password", Required: true, Hint: "8 to 1024 characters.", Error: err.Error()}}}
		h.userPage(w, r, u, http.StatusBadRequest, "", cur, nil, f)
		return
	}
	hash, err := h.o.Identity.Hasher.Hash(pw)
	if err != nil {
		h.pageError(w, u, "hashing a password", err)
		return
	}
	next := cur
	next.PasswordHash = hash
	if _, err := account.Update(ctx, h.o.Identity.Store, h.o.Identity.Audit, u.who(), cur, next); err != nil {
		h.pageError(w, u, "setting a password", err)
		return
	}
	redirectDone(w, r, userPath(cur.Username), "password")
}

// adminSetDisabled disables or enables a user (account.SetDisabled:
// disabling ends their sessions and revokes their refresh tokens).
func (h *Handler) adminSetDisabled(disabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, ctx := h.adminPost(w, r)
		if u == nil {
			return
		}
		name := r.PathValue("username")
		_, err := account.SetDisabled(ctx, h.o.Identity.Store, h.o.Identity.Audit, u.who(), name, disabled)
		if errors.Is(err, store.ErrNotFound) {
			h.notFound(w, u)
			return
		}
		if err != nil {
			h.pageError(w, u, "disabling or enabling a user", err)
			return
		}
		done := "enabled"
		if disabled {
			done = "disabled"
		}
		if disabled && name == u.sess.User {
			// Administrators who disable themselves have just ended
			// their own session.
			redirectDone(w, r, "/login", "")
			return
		}
		redirectDone(w, r, userPath(name), done)
	}
}

func (h *Handler) adminEndSessions(w http.ResponseWriter, r *http.Request) {
	u, ctx := h.adminPost(w, r)
	if u == nil {
		return
	}
	name := r.PathValue("username")
	err := account.EndSessions(ctx, h.o.Identity.Store, h.o.Identity.Audit, u.who(), name)
	if errors.Is(err, store.ErrNotFound) {
		h.notFound(w, u)
		return
	}
	if err != nil {
		h.pageError(w, u, "ending a user's sessions", err)
		return
	}
	redirectDone(w, r, userPath(name), "sessions")
}

// adminResetMFA is POST /admin/users/{username}/mfa/reset, the operation
// of the admin API's reset (audited as user.mfa_reset).
func (h *Handler) adminResetMFA(w http.ResponseWriter, r *http.Request) {
	u, ctx := h.adminPost(w, r)
	if u == nil {
		return
	}
	name := r.PathValue("username")
	if h.o.Identity.MFA == nil {
		h.notFound(w, u)
		return
	}
	err := h.o.Identity.MFA.Reset(ctx, u.who(), name)
	if errors.Is(err, store.ErrNotFound) {
		h.notFound(w, u)
		return
	}
	if err != nil {
		h.pageError(w, u, "resetting a second factor", err)
		return
	}
	redirectDone(w, r, userPath(name), "mfa")
}
