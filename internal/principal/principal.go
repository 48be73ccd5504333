// Package principal is the one place that spells principals: who a
// permission entry, a task assignee, an instance's starter or an audit
// record names. A principal is KIND:NAME: user:NAME for a Flowgate user,
// client:ID for a client acting for itself, role:NAME for everyone
// holding a role (in permissions and assignees only), and ISSUER:SUBJECT
// for a caller with a token from a trusted issuer (docs/flows.md).
package principal

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The kinds Flowgate itself defines. A trusted issuer may not be named
// like one of them, or its subjects would pass for Flowgate's own.
const (
	KindUser   = "user"
	KindClient = "client"
	KindRole   = "role"
)

// OwnKinds are the kinds Flowgate itself defines.
func OwnKinds() []string { return []string{KindUser, KindClient, KindRole} }

// User is the principal of the Flowgate user name.
func User(name string) string { return KindUser + ":" + name }

// Client is the principal of the client id acting for itself.
func Client(id string) string { return KindClient + ":" + id }

// Role is the entry naming everyone who holds role.
func Role(role string) string { return KindRole + ":" + role }

// External is the principal of a subject of the trusted issuer named
// issuer.
func External(issuer, subject string) string { return issuer + ":" + subject }

// Split parses a principal into its kind and the name after the first
// colon; ok is false when either is missing.
func Split(p string) (kind, name string, ok bool) {
	kind, name, ok = strings.Cut(p, ":")
	return kind, name, ok && kind != "" && name != ""
}

// RoleOf returns the role a role:NAME entry names.
func RoleOf(p string) (role string, ok bool) { return strings.CutPrefix(p, KindRole+":") }

// AssigneeKeys are the entries that name a caller with principal id and
// roles: the id itself and role:NAME for each role.
func AssigneeKeys(id string, roles []string) []string {
	keys := make([]string, 0, len(roles)+1)
	keys = append(keys, id)
	for _, r := range roles {
		keys = append(keys, Role(r))
	}
	return keys
}

// Matches reports whether an entry of a permission list names the caller
// with principal id and roles.
func Matches(entry, id string, roles []string) bool {
	if role, ok := RoleOf(entry); ok {
		return slices.Contains(roles, role)
	}
	return entry == id
}

// MaxUsername is the longest user name.
const MaxUsername = 64

// ValidUsername reports whether name is a user name: 1 to 64 letters,
// digits and . _ @ -, which principals (user:NAME) and URLs carry
// without escaping.
func ValidUsername(name string) bool {
	return name != "" && len(name) <= MaxUsername && onlyChars(name, "._@-")
}

// CheckUsername is ValidUsername as an error that quotes the name.
func CheckUsername(name string) error {
	if !ValidUsername(name) {
		return fmt.Errorf("%q must be at most %d letters, digits and . _ @ -", name, MaxUsername)
	}
	return nil
}

// ValidName reports whether name may name a trusted issuer, and so start
// its ISSUER:SUBJECT principals: 1 to 64 letters, digits and . _ -. The
// configuration holds the names of OAuth servers and identity providers,
// which flows and URLs carry, to the same rule.
func ValidName(name string) bool {
	return name != "" && len(name) <= 64 && onlyChars(name, "._-")
}

func onlyChars(s, allowed string) bool {
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune(allowed, r)) {
			return false
		}
	}
	return true
}

// Check checks a permission entry: user:NAME, role:NAME, client:ID, or
// ISSUER:SUBJECT for a trusted external issuer.
func Check(s string) error {
	kind, rest, ok := Split(s)
	if !ok {
		return fmt.Errorf("%q is not a principal (want user:NAME, role:NAME, client:ID or ISSUER:SUBJECT)", s)
	}
	if slices.Contains(OwnKinds(), kind) {
		return CheckAssignee(s)
	}
	if !ValidName(kind) {
		return fmt.Errorf("%q: %q is not an issuer name (letters, digits, . _ -)", s, kind)
	}
	if err := visible(rest, 256); err != nil {
		return fmt.Errorf("%q: subject %w", s, err)
	}
	return nil
}

// CheckAssignee checks a task assignee: user:NAME, role:NAME or client:ID.
func CheckAssignee(s string) error {
	kind, rest, _ := strings.Cut(s, ":")
	switch kind {
	case KindUser:
		if !ValidUsername(rest) {
			return fmt.Errorf("%q: a user name is at most %d letters, digits and . _ @ -", s, MaxUsername)
		}
	case KindRole:
		if err := visible(rest, 64); err != nil {
			return fmt.Errorf("%q: role %w", s, err)
		}
	case KindClient:
		if err := visible(rest, 128); err != nil {
			return fmt.Errorf("%q: client id %w", s, err)
		}
	default:
		return fmt.Errorf("%q is not an assignee (want user:NAME, role:NAME or client:ID)", s)
	}
	return nil
}

// CheckAssigneeKind checks the kind of an assignee whose name is computed
// later (user:${{ input.manager }}).
func CheckAssigneeKind(kind string) error {
	if !slices.Contains(OwnKinds(), kind) {
		return fmt.Errorf("%q is not an assignee kind (want user:, role: or client:)", kind+":")
	}
	return nil
}

// visible requires 1..max visible ASCII characters.
func visible(s string, max int) error {
	if s == "" {
		return errors.New("is empty")
	}
	if len(s) > max {
		return fmt.Errorf("is longer than %d characters", max)
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f {
			return errors.New("may only contain visible ASCII characters")
		}
	}
	return nil
}
