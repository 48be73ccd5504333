package flow

import (
	"fmt"
	"net/mail"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/flowgate/flowgate/internal/principal"
	"github.com/flowgate/flowgate/internal/yamlnode"
)

// Email sends a message through the configured mail server.
type Email struct {
	// To and Cc are addresses (someone@example.com, "Name
	// <someone@example.com>") or principals (user:NAME, role:NAME), whose
	// users' email addresses receive it; a template may compute them (a
	// string or a list).
	To, Cc []*Template
	// Subject and Body (plain text) are required; HTML is an optional
	// alternative body.
	Subject, Body, HTML *Template
}

func (p *parser) emailStep(o object, n *yaml.Node, a at) *Email {
	e := &Email{}
	e.To = p.recipients(o.get("to"), n, a.key("to"), true)
	e.Cc = p.recipients(o.get("cc"), n, a.key("cc"), false)
	e.Subject = p.requiredTemplate(o, n, a, "subject", "the subject line")
	e.Body = p.requiredTemplate(o, n, a, "body", "the message as plain text (html may add a formatted one)")
	e.HTML = p.optionalTemplate(o, a, "html")
	return e
}

func (p *parser) recipients(v, n *yaml.Node, a at, required bool) []*Template {
	switch {
	case v == nil:
		if required {
			p.errf(n, a, "required: addresses or principals (user:NAME, role:NAME)")
		}
		return nil
	case v.Kind == yaml.ScalarNode:
		return []*Template{p.template(v, a, checkRecipientTemplate)}
	case v.Kind != yaml.SequenceNode || len(v.Content) == 0:
		p.errf(v, a, "want a list of addresses or principals (user:NAME, role:NAME)")
		return nil
	}
	var out []*Template
	for i, c := range v.Content {
		if t := p.template(yamlnode.Resolve(c), a.index(i), checkRecipientTemplate); t != nil {
			out = append(out, t)
		}
	}
	return out
}

func checkRecipientTemplate(t *Template) error {
	if !t.IsLiteral() {
		return nil
	}
	return CheckRecipient(t.src)
}

// CheckRecipient accepts an email address or a user: or role: principal.
func CheckRecipient(s string) error {
	if kind, _, ok := strings.Cut(s, ":"); ok && (kind == principal.KindUser || kind == principal.KindRole || kind == principal.KindClient) {
		if kind == principal.KindClient {
			return fmt.Errorf("%q: a client has no email address (want an address, user:NAME or role:NAME)", s)
		}
		return principal.CheckAssignee(s)
	}
	if _, err := mail.ParseAddress(s); err != nil {
		return fmt.Errorf("%q is neither an email address nor user:NAME or role:NAME", s)
	}
	return nil
}

// ResolveRecipients evaluates the templates to recipients (addresses and
// principals), each once, in order.
func ResolveRecipients(ts []*Template, env *Env) ([]string, error) {
	var out []string
	add := func(t *Template, v any) error {
		s, ok := v.(string)
		if !ok {
			return t.fail(fmt.Errorf("want a recipient string, got %s", typeName(v)))
		}
		if err := CheckRecipient(s); err != nil {
			return t.fail(err)
		}
		for _, o := range out {
			if o == s {
				return nil
			}
		}
		out = append(out, s)
		return nil
	}
	for _, t := range ts {
		v, err := t.Evaluate(env)
		if err != nil {
			return nil, err
		}
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				if err := add(t, e); err != nil {
					return nil, err
				}
			}
		case []string:
			for _, e := range x {
				if err := add(t, e); err != nil {
					return nil, err
				}
			}
		default:
			if err := add(t, v); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
