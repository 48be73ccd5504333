package sqlstore

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// auditSizes is how many multi-row INSERTs of audit events there are:
// insertAuditRows[i] carries 2<<i rows, 2 to 128. A batch is written as
// the largest of them that fit, then the next, and a last single row: a
// few statements per group commit, each of a fixed text that is prepared
// once (SQLite) or found in the driver's statement cache (PostgreSQL),
// where a statement whose length followed the batch's would be compiled
// again for nearly every batch. 128 rows of 8 parameters stays far below
// SQLite's 32766 and PostgreSQL's 65535 parameter limits.
const auditSizes = 7

const (
	userCols   = `username, password_hash, email, email_verified, name, roles, disabled, created_at, updated_at`
	clientCols = `id, name, secret_hash, redirect_uris, post_logout_redirect_uris, grant_types, scopes,
		token_endpoint_auth_method, jwks, jwks_uri, public_key_pem, consent, dpop, roles, created_at, updated_at, allowed_origins, audiences`
	auditCols   = `id, ts, event, username, client_id, remote_addr, user_agent, outcome, detail`
	auditValues = `(?, ?, ?, ?, ?, ?, ?, ?)`
)

// queries holds every fixed statement, already rebound for the dialect.
type queries struct {
	rebind func(string) string

	schemaVersion string

	createUser, updateUser, getUser, countUsers string
	listUsersFirst, listUsersAfter              string

	createClient, updateClient, getClient, deleteClient string
	listClientsFirst, listClientsAfter                  string

	// accessTokenRevoked is read for every request with a token on PostgreSQL.
	accessTokenRevoked string

	insertAudit     string
	insertAuditRows [auditSizes]string

	putSecret, getSecret string

	flows flowQueries
}

func buildQueries(rebind func(string) string, versionTable string) queries {
	if rebind == nil {
		rebind = func(q string) string { return q }
	}
	q := queries{
		rebind: rebind,

		schemaVersion: `SELECT MAX(version_id) FROM ` + versionTable,

		createUser: rebind(`INSERT INTO users (` + userCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		updateUser: rebind(`UPDATE users SET password_hash = ?, email = ?, email_verified = ?, name = ?,
			roles = ?, disabled = ?, updated_at = ? WHERE username = ?`),
		getUser:        rebind(`SELECT ` + userCols + ` FROM users WHERE username = ?`),
		countUsers:     `SELECT COUNT(*) FROM users`,
		listUsersFirst: rebind(`SELECT ` + userCols + ` FROM users ORDER BY username LIMIT ?`),
		listUsersAfter: rebind(`SELECT ` + userCols + ` FROM users WHERE username > ? ORDER BY username LIMIT ?`),

		createClient: rebind(`INSERT INTO clients (` + clientCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		updateClient: rebind(`UPDATE clients SET name = ?, secret_hash = ?, redirect_uris = ?, post_logout_redirect_uris = ?,
			grant_types = ?, scopes = ?, token_endpoint_auth_method = ?, jwks = ?, jwks_uri = ?, public_key_pem = ?,
			consent = ?, dpop = ?, roles = ?, updated_at = ?, allowed_origins = ?, audiences = ? WHERE id = ?`),
		getClient:        rebind(`SELECT ` + clientCols + ` FROM clients WHERE id = ?`),
		deleteClient:     rebind(`DELETE FROM clients WHERE id = ?`),
		listClientsFirst: rebind(`SELECT ` + clientCols + ` FROM clients ORDER BY id LIMIT ?`),
		listClientsAfter: rebind(`SELECT ` + clientCols + ` FROM clients WHERE id > ? ORDER BY id LIMIT ?`),

		insertAudit: rebind(insertAuditSQL(1)),

		// ON CONFLICT … DO UPDATE is spelled the same in SQLite (3.24+) and
		// PostgreSQL, so an upsert needs no dialect hook.
		putSecret: rebind(`INSERT INTO secrets (name, sealed, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at`),
		getSecret: rebind(`SELECT sealed FROM secrets WHERE name = ?`),

		accessTokenRevoked: rebind(`SELECT 1 FROM revoked_access_tokens WHERE jti = ?`),

		flows: buildFlowQueries(rebind),
	}
	for i := range q.insertAuditRows {
		q.insertAuditRows[i] = rebind(insertAuditSQL(2 << i))
	}
	return q
}

func insertAuditSQL(rows int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO audit_events (ts, event, username, client_id, remote_addr, user_agent, outcome, detail) VALUES `)
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(auditValues)
	}
	return b.String()
}

// micros is how a time is stored: unix microseconds, UTC.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros is how a stored time comes back.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// nowOr returns t in UTC at microsecond precision, or now when t is zero.
func nowOr(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t.UTC().Truncate(time.Microsecond)
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// encodeList stores nil and empty lists alike as "[]", so a column never
// holds JSON null.
func encodeList(l []string) (string, error) {
	if len(l) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(l)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// decodeList returns nil for an empty list, so that a value read back
// compares equal to one that was never set.
func decodeList(s string) ([]string, error) {
	if s == "" || s == "[]" {
		return nil, nil
	}
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, fmt.Errorf("decode list %.40q: %w", s, err)
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

// encodeLists encodes several lists, naming the first that fails.
func encodeLists(names []string, lists ...[]string) ([]string, error) {
	out := make([]string, len(lists))
	for i, l := range lists {
		s, err := encodeList(l)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", names[i], err)
		}
		out[i] = s
	}
	return out, nil
}
