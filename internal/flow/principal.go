package flow

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

var (
	// usernameRE and issuerNameRE follow the config package's rules for
	// user names and names of trusted issuers.
	usernameRE   = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)
	issuerNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

// checkPrincipal checks a permission entry: user:NAME, role:NAME,
// client:ID, or ISSUER:SUBJECT for a trusted external issuer (SPEC §4).
func checkPrincipal(s string) error {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok || kind == "" || rest == "" {
		return fmt.Errorf("%q is not a principal (want user:NAME, role:NAME, client:ID or ISSUER:SUBJECT)", s)
	}
	switch kind {
	case "user", "role", "client":
		return checkAssignee(s)
	}
	if !issuerNameRE.MatchString(kind) {
		return fmt.Errorf("%q: %q is not an issuer name (letters, digits, . _ -)", s, kind)
	}
	if err := visible(rest, 256); err != nil {
		return fmt.Errorf("%q: subject %w", s, err)
	}
	return nil
}

// checkAssignee checks a task assignee: user:NAME, role:NAME or client:ID.
func checkAssignee(s string) error {
	kind, rest, _ := strings.Cut(s, ":")
	switch kind {
	case "user":
		if !usernameRE.MatchString(rest) {
			return fmt.Errorf("%q: a user name is at most 64 letters, digits and . _ @ -", s)
		}
	case "role":
		if err := visible(rest, 64); err != nil {
			return fmt.Errorf("%q: role %w", s, err)
		}
	case "client":
		if err := visible(rest, 128); err != nil {
			return fmt.Errorf("%q: client id %w", s, err)
		}
	default:
		return fmt.Errorf("%q is not an assignee (want user:NAME, role:NAME or client:ID)", s)
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

// checkAssigneeTemplate checks what can be checked at deploy: a literal
// assignee fully, a computed one by its literal kind prefix
// (user:${{ input.manager }}).
func checkAssigneeTemplate(t *Template) error {
	if t.IsLiteral() {
		return checkAssignee(t.src)
	}
	if t.IsExpression() {
		return nil
	}
	prefix := t.parts[0].text
	if t.parts[0].prog != nil {
		return nil
	}
	if kind, _, ok := strings.Cut(prefix, ":"); ok {
		if kind != "user" && kind != "role" && kind != "client" {
			return fmt.Errorf("%q is not an assignee kind (want user:, role: or client:)", kind+":")
		}
	}
	return nil
}

// ResolveAssignees computes the task's assignees. A template that is one
// expression may give a string or a list of strings; every result must be
// user:NAME, role:NAME or client:ID. Duplicates are dropped.
func (t *Task) ResolveAssignees(env *Env) ([]string, error) {
	var out []string
	add := func(tmpl *Template, v any) error {
		s, ok := v.(string)
		if !ok {
			return tmpl.fail(fmt.Errorf("want an assignee string, got %s", typeName(v)))
		}
		if err := checkAssignee(s); err != nil {
			return tmpl.fail(err)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
		return nil
	}
	for _, tmpl := range t.Assignees {
		v, err := tmpl.Evaluate(env)
		if err != nil {
			return nil, err
		}
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				if err := add(tmpl, e); err != nil {
					return nil, err
				}
			}
		case []string:
			for _, e := range x {
				if err := add(tmpl, e); err != nil {
					return nil, err
				}
			}
		default:
			if err := add(tmpl, v); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// CanStart reports whether a caller with the given principal id
// (user:alice, client:portal, entra:8d2f…) and roles is among
// Permissions.Start. It does not know about administrators; the API layer
// decides whether the admin role overrides.
func (d *Definition) CanStart(principalID string, roles []string) bool {
	for _, p := range d.Permissions.Start {
		if role, ok := strings.CutPrefix(p, "role:"); ok {
			if slices.Contains(roles, role) {
				return true
			}
		} else if p == principalID {
			return true
		}
	}
	return false
}
