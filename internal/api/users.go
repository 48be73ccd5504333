package api

import (
	"net/http"
	"slices"
	"time"

	"github.com/flowgate/flowgate/internal/account"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/mfa"
	"github.com/flowgate/flowgate/internal/store"
)

// userJSON is a user as the API shows it: never the password hash.
type userJSON struct {
	Username      string   `json:"username"`
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	Name          string   `json:"name"`
	Roles         []string `json:"roles"`
	Disabled      bool     `json:"disabled"`
	PasswordSet   bool     `json:"password_set"`
	CreatedAt     string   `json:"created_at"`
	UpdatedAt     string   `json:"updated_at"`
}

func toUserJSON(u store.User) userJSON {
	return userJSON{
		Username: u.Username, Email: u.Email, EmailVerified: u.EmailVerified, Name: u.Name,
		Roles: nonNil(u.Roles), Disabled: u.Disabled, PasswordSet: u.PasswordHash != "",
		CreatedAt: timeString(u.CreatedAt), UpdatedAt: timeString(u.UpdatedAt),
	}
}

// userRequest is the body of POST and PATCH; nil means "not given".
type userRequest struct {
	Username *string   `json:"username"`
	Password *string   `json:"password"`
	Email    *string   `json:"email"`
	Name     *string   `json:"name"`
	Roles    *[]string `json:"roles"`
	Disabled *bool     `json:"disabled"`
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) {
	p, ok := page(w, r)
	if !ok {
		return
	}
	users, next, err := a.st.ListUsers(r.Context(), p)
	if err != nil {
		a.listError(w, r, err)
		return
	}
	out := make([]userJSON, len(users))
	for i, u := range users {
		out[i] = toUserJSON(u)
	}
	writeJSON(w, http.StatusOK, newList(out, next))
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("username")
	u, err := a.st.GetUser(r.Context(), name)
	if err != nil {
		a.storeError(w, r, err, "user", name)
		return
	}
	writeJSON(w, http.StatusOK, toUserJSON(u))
}

// applyUser copies the given fields of req onto u, validating them; false
// when it answered.
func (a *API) applyUser(w http.ResponseWriter, r *http.Request, req userRequest, u *store.User) bool {
	if req.Email != nil {
		if *req.Email != u.Email {
			u.EmailVerified = false
		}
		u.Email = *req.Email
	}
	if req.Name != nil {
		u.Name = *req.Name
	}
	if req.Roles != nil {
		u.Roles = slices.Clone(*req.Roles)
	}
	if req.Disabled != nil {
		u.Disabled = *req.Disabled
	}
	if err := (config.User{Username: u.Username, Email: u.Email, Name: u.Name, Roles: u.Roles}).Validate(); err != nil {
		fieldErrors(w, err)
		return false
	}
	if req.Password != nil {
		pw := *req.Password
		if err := account.CheckPassword(pw); err != nil {
			badRequest(w, "password", err.Error())
			return false
		}
		hash, err := a.hasher.Hash(pw)
		if err != nil {
			a.serverError(w, r, err)
			return false
		}
		u.PasswordHash = hash
	}
	return true
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request) {
	var req userRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Username == nil || *req.Username == "" {
		badRequest(w, "username", "username is required")
		return
	}
	now := time.Now().UTC()
	u := store.User{Username: *req.Username, CreatedAt: now, UpdatedAt: now}
	if !a.applyUser(w, r, req, &u) {
		return
	}
	if err := account.Create(r.Context(), a.st, a.auditor, actor(r), u); err != nil {
		a.storeError(w, r, err, "user", u.Username)
		return
	}
	w.Header().Set("Location", "/api/v1/admin/users/"+u.Username)
	writeJSON(w, http.StatusCreated, toUserJSON(u))
}

func (a *API) patchUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("username")
	var req userRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Username != nil && *req.Username != name {
		badRequest(w, "username", "username cannot be changed (it is the user's key)")
		return
	}
	u, err := a.st.GetUser(r.Context(), name)
	if err != nil {
		a.storeError(w, r, err, "user", name)
		return
	}
	next := u
	next.Roles = slices.Clone(u.Roles)
	if !a.applyUser(w, r, req, &next) {
		return
	}
	saved, err := account.Update(r.Context(), a.st, a.auditor, actor(r), u, next)
	switch {
	case saved.Username == "": // not written
		a.storeError(w, r, err, "user", name)
		return
	case err != nil:
		// Written and disabled, but the sessions could not all be ended:
		// logged, not answered, since every use of a refresh token or
		// session checks the user again.
		a.log.WarnContext(r.Context(), "disabled user: sessions not ended", "user", name, "err", err)
	}
	writeJSON(w, http.StatusOK, toUserJSON(saved))
}

// setUserDisabled serves POST …/disable and …/enable.
func (a *API) setUserDisabled(disabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("username")
		u, err := account.SetDisabled(r.Context(), a.st, a.auditor, actor(r), name, disabled)
		if err != nil {
			a.storeError(w, r, err, "user", name)
			return
		}
		writeJSON(w, http.StatusOK, toUserJSON(u))
	}
}

// resetUserMFA is POST /admin/users/{username}/mfa/reset: the user's
// second factor removed (audited as user.mfa_reset), so they enrol again.
func (a *API) resetUserMFA(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("username")
	m := mfa.New(mfa.Options{Store: a.st, Ring: a.ring, Auditor: a.auditor})
	if err := m.Reset(r.Context(), actor(r), name); err != nil {
		a.storeError(w, r, err, "user", name)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
