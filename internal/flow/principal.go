package flow

import (
	"fmt"
	"slices"
	"strings"

	"github.com/flowgate/flowgate/internal/principal"
)

// checkAssigneeTemplate checks what can be checked at deploy: a literal
// assignee fully, a computed one by its literal kind prefix
// (user:${{ input.manager }}).
func checkAssigneeTemplate(t *Template) error {
	if t.IsLiteral() {
		return principal.CheckAssignee(t.src)
	}
	if t.IsExpression() {
		return nil
	}
	prefix := t.parts[0].text
	if t.parts[0].prog != nil {
		return nil
	}
	if kind, _, ok := strings.Cut(prefix, ":"); ok {
		return principal.CheckAssigneeKind(kind)
	}
	return nil
}

// ResolveAssignees computes the task's assignees. A template that is one
// expression may give a string or a list of strings; every result must be
// user:NAME, role:NAME or client:ID. Duplicates are dropped.
func (t *Task) ResolveAssignees(env *Env) ([]string, error) {
	return resolveAssignees(t.Assignees, env)
}

// Resolve computes the assignees an escalation adds, as ResolveAssignees.
func (e *Escalation) Resolve(env *Env) ([]string, error) {
	return resolveAssignees(e.To, env)
}

func resolveAssignees(templates []*Template, env *Env) ([]string, error) {
	var out []string
	add := func(tmpl *Template, v any) error {
		s, ok := v.(string)
		if !ok {
			return tmpl.fail(fmt.Errorf("want an assignee string, got %s", typeName(v)))
		}
		if err := principal.CheckAssignee(s); err != nil {
			return tmpl.fail(err)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
		return nil
	}
	for _, tmpl := range templates {
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
// Permissions.Start. It does not know about administrators, whom the
// engine lets start any flow.
func (d *Definition) CanStart(principalID string, roles []string) bool {
	return slices.ContainsFunc(d.Permissions.Start, func(p string) bool { return principal.Matches(p, principalID, roles) })
}
