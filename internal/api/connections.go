package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/flowgate/flowgate/internal/resource"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/vault"
)

// This file serves the caller's vault connections (docs/api.md
// /api/v1/connections): the OAuth servers a flow reached on the caller's
// behalf, listed and disconnected. No answer ever carries a token: the
// list is built from vault.Info, which has none.

// disconnectTimeout bounds a disconnect: the revocation at the provider
// (the vault bounds each call itself) and the store's writes.
const disconnectTimeout = 30 * time.Second

// connectionJSON is a connection as the API shows it.
type connectionJSON struct {
	Server string   `json:"server"`
	Scopes []string `json:"scopes"`
	// ExpiresAt is when the access token expires (the vault refreshes it
	// ahead of that); null when unknown.
	ExpiresAt *string `json:"expires_at"`
	// Status is "ok" or "reconnect_required" (the provider refused the
	// refresh token: the user must sign in again).
	Status string `json:"status"`
	// LastError says why the last refresh failed; null when none did.
	LastError *string `json:"last_error"`
	UpdatedAt string  `json:"updated_at"`
}

func toConnectionJSON(c vault.Info) connectionJSON {
	out := connectionJSON{Server: c.Server, Scopes: nonNil(c.Scopes), Status: c.Status, UpdatedAt: timeString(c.UpdatedAt)}
	if out.Status == "" {
		out.Status = store.ConnectionOK
	}
	if !c.Expiry.IsZero() {
		s := timeString(c.Expiry)
		out.ExpiresAt = &s
	}
	if c.LastError != "" {
		s := c.LastError
		out.LastError = &s
	}
	return out
}

// disconnected is the answer of DELETE /api/v1/connections/{server}.
type disconnected struct {
	Server  string `json:"server"`
	Deleted bool   `json:"deleted"`
	// Revoked reports that the provider confirmed the revocation; false
	// when it has no revocation endpoint or refused.
	Revoked bool `json:"revoked"`
	// RevokeError says why revocation failed; the connection is deleted
	// all the same.
	RevokeError string `json:"revoke_error,omitempty"`
}

// vaultOr answers 503 and returns nil when the API has no vault.
func (a *API) vaultOr(w http.ResponseWriter) *vault.Vault {
	if a.vault == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable",
			"the token vault is not configured on this server, so connections to OAuth servers cannot be read or removed", "")
		return nil
	}
	return a.vault
}

// principalOr returns the caller's principal id, the vault's key (the
// same one the engine records as an instance's starter), or answers 403
// and returns "" when the request has none.
func principalOr(w http.ResponseWriter, r *http.Request) string {
	p, ok := resource.PrincipalFrom(r.Context())
	if !ok || p.ID == "" {
		// Every route here runs behind Authenticate; a caller without
		// an id has no connections to see or remove.
		writeError(w, http.StatusForbidden, "forbidden", "the caller has no principal id, so it has no connections", "")
		return ""
	}
	return p.ID
}

// listConnections answers the caller's connections, ordered by server.
// A principal has one connection per OAuth server, so the vault lists
// them all and the page is cut here; the cursor is the last server name
// of the previous page, opaque to callers.
func (a *API) listConnections(w http.ResponseWriter, r *http.Request) {
	v := a.vaultOr(w)
	if v == nil {
		return
	}
	principal := principalOr(w, r)
	if principal == "" {
		return
	}
	p, ok := page(w, r)
	if !ok {
		return
	}
	p = p.Normalize()
	after := ""
	if p.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(p.Cursor)
		if err != nil || len(b) == 0 {
			a.listError(w, r, store.ErrInvalidCursor)
			return
		}
		after = string(b)
	}
	infos, err := v.List(r.Context(), principal)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	items := make([]connectionJSON, 0, min(len(infos), p.Limit))
	next := ""
	for _, c := range infos {
		if after != "" && c.Server <= after {
			continue
		}
		if len(items) == p.Limit {
			next = base64.RawURLEncoding.EncodeToString([]byte(items[len(items)-1].Server))
			break
		}
		items = append(items, toConnectionJSON(c))
	}
	writeJSON(w, http.StatusOK, newList(items, next))
}

// deleteConnection disconnects the caller from an OAuth server: the
// vault revokes the tokens at the provider where it has a revocation
// endpoint, and deletes the connection even when revocation fails (the
// answer says so). 404 when there is no such connection.
func (a *API) deleteConnection(w http.ResponseWriter, r *http.Request) {
	v := a.vaultOr(w)
	if v == nil {
		return
	}
	principal := principalOr(w, r)
	if principal == "" {
		return
	}
	server := r.PathValue("server")
	// The disconnect runs to its end even when the caller goes away: a
	// revocation without the deletion would leave a dead connection, and
	// the user asked for both.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), disconnectTimeout)
	defer cancel()
	revoked, revokeErr, err := v.Delete(ctx, principal, server)
	if errors.Is(err, vault.ErrNotConnected) {
		writeError(w, http.StatusNotFound, "not_found",
			fmt.Sprintf("%s has no connection to OAuth server %q", principal, server), "")
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	out := disconnected{Server: server, Deleted: true, Revoked: revoked}
	if revokeErr != nil {
		out.RevokeError = describeRevokeError(server, revokeErr)
		a.log.WarnContext(r.Context(), "connection deleted, but its tokens could not be revoked at the provider",
			"principal", principal, "server", server, "err", out.RevokeError)
	}
	writeJSON(w, http.StatusOK, out)
}

// describeRevokeError says why revocation failed. The vault's errors
// (connectors.Error: the provider's error code and description, never a
// token) are shown as they are; a server entry deleted since the
// connection was made gets a sentence of its own.
func describeRevokeError(server string, err error) string {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Sprintf("OAuth server %q is no longer configured, so the tokens could not be revoked at the provider", server)
	}
	return err.Error()
}
