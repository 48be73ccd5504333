package flow

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/flowgate/flowgate/internal/duration"
	"github.com/flowgate/flowgate/internal/yamlnode"
)

// Defaults and bounds of step settings.
const (
	// DefaultHTTPTimeout bounds an http step attempt without a timeout.
	DefaultHTTPTimeout = 30 * time.Second
	// MaxHTTPTimeout is the longest timeout an http step may ask for, so
	// that a graceful stop is not held up for long.
	MaxHTTPTimeout = 5 * time.Minute
	// MaxRetryAttempts is the most attempts a retry policy may ask for.
	MaxRetryAttempts = 10
	// DefaultRetryBackoff is the backoff of a retry policy without one.
	DefaultRetryBackoff = time.Second
	// MaxRetryBackoff is the longest backoff a retry policy may ask for.
	MaxRetryBackoff = time.Hour
)

// httpMethods lists the methods an http step may use.
// (A function, not a variable, so no caller can change the list.)
func httpMethods() []string {
	return []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
}

func (p *parser) httpStep(o object, n *yaml.Node, a at) *HTTP {
	h := &HTTP{Method: "GET", Timeout: DefaultHTTPTimeout, Retry: Retry{Attempts: 1}}
	if v := o.get("method"); v != nil {
		if m, ok := p.literal(v, a.key("method")); ok {
			m = strings.ToUpper(m)
			if slices.Contains(httpMethods(), m) {
				h.Method = m
			} else {
				p.errf(v, a.key("method"), "%q is not an HTTP method (want one of %s)", m, strings.Join(httpMethods(), ", "))
			}
		}
	}
	if v := o.get("url"); v != nil {
		h.URL = p.template(v, a.key("url"), checkURL)
	} else {
		p.errf(n, a.key("url"), "required")
	}
	if v := o.get("headers"); v != nil {
		h.Headers = p.templateMap(v, a.key("headers"), checkHeaderName)
	}
	if v := o.get("query"); v != nil {
		h.Query = p.templateMap(v, a.key("query"), nil)
	}
	if v := o.get("body"); v != nil {
		h.Body, h.HasBody = p.tree(v, a.key("body")), true
	}
	if v := o.get("form"); v != nil {
		h.Form = p.templateMap(v, a.key("form"), nil)
		if h.HasBody {
			p.errf(o.keyNode("form"), a.key("form"), "body and form exclude each other: body is sent as JSON, form as application/x-www-form-urlencoded")
		}
	}
	if v := o.get("timeout"); v != nil {
		if d, ok := p.duration(v, a.key("timeout")); ok {
			if d > MaxHTTPTimeout {
				p.errf(v, a.key("timeout"), "at most %s", MaxHTTPTimeout)
			} else {
				h.Timeout = d
			}
		}
	}
	if v := o.get("auth"); v != nil {
		h.Auth = p.httpAuth(v, a.key("auth"))
		for name := range h.Headers {
			if strings.EqualFold(name, "Authorization") {
				p.errf(v, a.key("auth"), "auth sets the Authorization header; remove headers.%s", name)
			}
		}
	}
	if v := o.get("retry"); v != nil {
		h.Retry = p.retry(v, a.key("retry"))
	}
	if v := o.get("fail_on_status"); v != nil {
		h.FailOnStatus, _ = p.boolean(v, a.key("fail_on_status"))
	}
	return h
}

func (p *parser) httpAuth(n *yaml.Node, a at) *HTTPAuth {
	o, ok := p.mapping(n, a)
	if !ok {
		return nil
	}
	p.allow(o, a, "auth", "server", "as")
	auth := &HTTPAuth{Server: p.server(o, n, a)}
	v := o.get("as")
	if v == nil {
		// Whose token to send is too consequential to default.
		p.errf(n, a.key("as"), "required: starter (the user who started the instance) or service (Flowgate's own client credentials)")
		return auth
	}
	if s, ok := p.literal(v, a.key("as")); ok {
		if s != AuthAsStarter && s != AuthAsService {
			p.errf(v, a.key("as"), "%q: want starter or service", s)
		}
		auth.As = s
	}
	return auth
}

func (p *parser) retry(n *yaml.Node, a at) Retry {
	r := Retry{Attempts: 1}
	o, ok := p.mapping(n, a)
	if !ok {
		return r
	}
	p.allow(o, a, "retry", "attempts", "backoff")
	if v := o.get("attempts"); v != nil {
		if i, ok := p.integer(v, a.key("attempts")); ok {
			if i < 1 || i > MaxRetryAttempts {
				p.errf(v, a.key("attempts"), "%d: want 1 to %d (every try counts, the first included)", i, MaxRetryAttempts)
			} else {
				r.Attempts = i
			}
		}
	} else {
		p.errf(n, a.key("attempts"), "required: how many tries in all, 1 to %d", MaxRetryAttempts)
	}
	r.Backoff = DefaultRetryBackoff
	if v := o.get("backoff"); v != nil {
		if d, ok := p.duration(v, a.key("backoff")); ok {
			if d > MaxRetryBackoff {
				p.errf(v, a.key("backoff"), "at most %s", MaxRetryBackoff)
			} else {
				r.Backoff = d
			}
		}
	}
	return r
}

// duration reads a duration above zero (30s, 1h30m, 7d), as the
// configuration file writes them.
func (p *parser) duration(n *yaml.Node, a at) (time.Duration, bool) {
	s, ok := p.literal(n, a)
	if !ok {
		return 0, false
	}
	d, err := duration.Positive(s)
	if err != nil {
		p.fail(n, a, err)
		return 0, false
	}
	return d, true
}

func checkURL(t *Template) error {
	if !t.IsLiteral() {
		// Known only at run time; the engine checks the result.
		return nil
	}
	return CheckURL(t.src)
}

// CheckURL reports whether s is an absolute http or https URL, the only
// URLs http steps call. The engine applies it to URLs computed by
// expressions.
func CheckURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q: want an absolute http:// or https:// URL", s)
	}
	return nil
}

func checkHeaderName(s string) error {
	if s == "" {
		return errors.New("empty header name")
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return fmt.Errorf("%q is not a valid header name", s)
		}
	}
	return nil
}

func (p *parser) task(i int, o object, n *yaml.Node, a at) *Task {
	t := &Task{Next: map[string]string{}}
	if v := o.get("title"); v != nil {
		t.Title = p.template(v, a.key("title"), nil)
	} else {
		p.errf(n, a.key("title"), "required: what the worklist shows")
	}
	if v := o.get("assignees"); v == nil {
		p.errf(n, a.key("assignees"), "required: a task needs at least one assignee (user:NAME, role:NAME, client:ID)")
	} else if v.Kind != yaml.SequenceNode {
		p.errf(v, a.key("assignees"), "want a list, not %s", yamlnode.Describe(v))
	} else if len(v.Content) == 0 {
		p.errf(v, a.key("assignees"), "a task needs at least one assignee (user:NAME, role:NAME, client:ID)")
	} else {
		for j, c := range v.Content {
			if tt := p.template(yamlnode.Resolve(c), a.key("assignees").index(j), checkAssigneeTemplate); tt != nil {
				t.Assignees = append(t.Assignees, tt)
			}
		}
	}
	actionsNode := o.get("actions")
	switch {
	case actionsNode == nil:
		p.errf(n, a.key("actions"), "a task needs at least one action")
	case actionsNode.Kind != yaml.SequenceNode:
		p.errf(actionsNode, a.key("actions"), "want a list, not %s", yamlnode.Describe(actionsNode))
	case len(actionsNode.Content) == 0:
		p.errf(actionsNode, a.key("actions"), "a task needs at least one action")
	default:
		seen := map[string]bool{}
		for j, c := range actionsNode.Content {
			c = yamlnode.Resolve(c)
			aa := a.key("actions").index(j)
			s, ok := p.literal(c, aa)
			switch {
			case !ok:
			case len(s) > 64 || !actionRE.MatchString(s):
				p.errf(c, aa, "%q: an action is letters, digits, spaces and _ . - (at most 64)", s)
			case seen[s]:
				p.errf(c, aa, "duplicate action %q", s)
			default:
				seen[s] = true
				t.Actions = append(t.Actions, s)
			}
		}
	}
	if v := o.get("form"); v != nil {
		t.Form, t.FormOrder = p.fields(v, a.key("form"))
	} else {
		t.Form = map[string]Field{}
	}
	if v := o.get("next"); v != nil {
		na := a.key("next")
		if v.Kind != yaml.MappingNode {
			p.errf(v, na, "a task's next maps each action to a step, such as {%s: STEP}", firstOr(t.Actions, "Approve"))
		} else {
			no, _ := p.mapping(v, na)
			for _, action := range no.keys {
				aa := na.key(action)
				if !slices.Contains(t.Actions, action) && actionsNode != nil {
					p.errf(no.keyNode(action), aa, "%q is not one of the actions (%s)", action, strings.Join(t.Actions, ", "))
					continue
				}
				tv := no.get(action)
				if id, ok := p.literal(tv, aa); ok {
					t.Next[action] = id
					p.ref(id, tv, aa)
				}
			}
		}
	}
	t.Deadline = p.deadline(i, o, a)
	return t
}

// deadline reads a task's due, remind, escalate and on_due.
func (p *parser) deadline(i int, o object, a at) *Deadline {
	dn, rn, en, on := o.get("due"), o.get("remind"), o.get("escalate"), o.get("on_due")
	if dn == nil && rn == nil && en == nil && on == nil {
		return nil
	}
	d := &Deadline{}
	if dn != nil {
		if dn.Kind == yaml.ScalarNode && strings.Contains(dn.Value, "${{") {
			d.DueExpr = p.template(dn, a.key("due"), nil)
		} else {
			d.Due, _ = p.duration(dn, a.key("due"))
		}
	}
	if rn != nil {
		if dn == nil {
			p.errf(o.keyNode("remind"), a.key("remind"), "a reminder is a duration before due; give due too")
		} else if r, ok := p.duration(rn, a.key("remind")); ok {
			if d.Due > 0 && r >= d.Due {
				p.errf(rn, a.key("remind"), "%s before due is at or before the task opens (due is %s)", r, d.Due)
			}
			d.Remind = r
		}
	}
	if on != nil {
		if dn == nil {
			p.errf(o.keyNode("on_due"), a.key("on_due"), "on_due says where to go when due passes; give due too")
		} else if id, ok := p.literal(on, a.key("on_due")); ok {
			d.OnDue = id
			p.ref(id, on, a.key("on_due"))
		}
	}
	if en != nil {
		ea := a.key("escalate")
		eo, ok := p.mapping(en, ea)
		if ok {
			p.allow(eo, ea, "escalate", "after", "to")
			esc := &Escalation{}
			if v := eo.get("after"); v != nil {
				esc.After, _ = p.duration(v, ea.key("after"))
			} else {
				p.errf(en, ea.key("after"), "required: how long without action before escalating, such as 2d")
			}
			switch v := eo.get("to"); {
			case v == nil:
				p.errf(en, ea.key("to"), "required: the assignees to add (user:NAME, role:NAME, client:ID)")
			case v.Kind != yaml.SequenceNode || len(v.Content) == 0:
				p.errf(v, ea.key("to"), "want a list of assignees (user:NAME, role:NAME, client:ID)")
			default:
				for j, c := range v.Content {
					if tt := p.template(yamlnode.Resolve(c), ea.key("to").index(j), checkAssigneeTemplate); tt != nil {
						esc.To = append(esc.To, tt)
					}
				}
			}
			d.Escalate = esc
		}
	}
	return d
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

func (p *parser) switchStep(i int, o object, n *yaml.Node, a at) *Switch {
	sw := &Switch{}
	v := o.get("cases")
	switch {
	case v == nil:
		p.errf(n, a.key("cases"), "required: a switch needs at least one case {when, next}")
	case v.Kind != yaml.SequenceNode:
		p.errf(v, a.key("cases"), "want a list of {when, next}, not %s", yamlnode.Describe(v))
	case len(v.Content) == 0:
		p.errf(v, a.key("cases"), "a switch needs at least one case {when, next}")
	default:
		for j, c := range v.Content {
			ca := a.key("cases").index(j)
			co, ok := p.mapping(c, ca)
			if !ok {
				continue
			}
			p.allow(co, ca, "a case", "when", "next")
			var cs Case
			if w := co.get("when"); w == nil {
				p.errf(c, ca.key("when"), "required: a ${{ … }} expression giving true or false")
			} else if w.Kind == yaml.ScalarNode && w.Tag == "!!str" {
				cs.When = p.templateOf(w.Value, w, ca.key("when"), true, nil)
			} else {
				p.errf(w, ca.key("when"), "want a ${{ … }} expression giving true or false, not %s", yamlnode.Describe(w))
			}
			if nx := co.get("next"); nx == nil {
				p.errf(c, ca.key("next"), "required: the step to go to when the case holds")
			} else if id, ok := p.literal(nx, ca.key("next")); ok {
				cs.Next = id
				p.ref(id, nx, ca.key("next"))
			}
			sw.Cases = append(sw.Cases, cs)
		}
	}
	if d := o.get("default"); d != nil {
		if id, ok := p.literal(d, a.key("default")); ok {
			sw.Default = id
			p.ref(id, d, a.key("default"))
		}
	}
	return sw
}

func (p *parser) setStep(o object, n *yaml.Node, a at) *Set {
	s := &Set{Vars: map[string]any{}}
	v := o.get("vars")
	if v == nil {
		p.errf(n, a.key("vars"), "required: the variables to set, {NAME: value}")
		return s
	}
	vo, ok := p.mapping(v, a.key("vars"))
	if !ok {
		return s
	}
	if len(vo.keys) == 0 {
		p.errf(v, a.key("vars"), "a set step needs at least one variable")
	}
	for _, name := range vo.keys {
		va := a.key("vars").key(name)
		if len(name) > 64 || !identRE.MatchString(name) {
			p.errf(vo.keyNode(name), va, "a variable name is letters, digits and _ (not starting with a digit), at most 64, so expressions can say vars.NAME")
			continue
		}
		s.Vars[name] = p.tree(vo.get(name), va)
		s.VarsOrder = append(s.VarsOrder, name)
	}
	return s
}

func (p *parser) waitStep(o object, n *yaml.Node, a at) *Wait {
	w := &Wait{}
	dn, un := o.get("duration"), o.get("until")
	switch {
	case dn != nil && un != nil:
		p.errf(n, a, "a wait takes duration or until, not both")
	case dn == nil && un == nil:
		p.errf(n, a, "a wait needs duration (such as 10m) or until (an RFC 3339 time or an expression)")
	case dn != nil:
		w.Duration, _ = p.duration(dn, a.key("duration"))
	default:
		w.Until = p.template(un, a.key("until"), func(t *Template) error {
			if !t.IsLiteral() {
				return nil
			}
			if _, err := time.Parse(time.RFC3339, t.src); err != nil {
				return fmt.Errorf("%q is not an RFC 3339 time (such as 2026-01-31T17:00:00Z) or an expression", t.src)
			}
			return nil
		})
	}
	return w
}

func (p *parser) returnStep(o object, a at) *Return {
	r := &Return{Status: 200}
	if v := o.get("status"); v != nil {
		sa := a.key("status")
		switch {
		case v.Kind == yaml.ScalarNode && v.Tag == "!!int":
			if st, ok := p.integer(v, sa); ok {
				if st < 200 || st > 599 {
					p.errf(v, sa, "%d is not a final HTTP status (200–599)", st)
				} else {
					r.Status = st
				}
			}
		case v.Kind == yaml.ScalarNode && v.Tag == "!!str" && strings.Contains(v.Value, "${{"):
			r.Status = 0
			r.StatusExpr = p.templateOf(v.Value, v, sa, false, func(t *Template) error {
				if !t.IsExpression() {
					return errors.New("want a number 200–599 or one ${{ … }} expression")
				}
				return nil
			})
		default:
			p.errf(v, sa, "want a number 200–599 or one ${{ … }} expression, not %s", yamlnode.Describe(v))
		}
	}
	if v := o.get("headers"); v != nil {
		r.Headers = p.templateMap(v, a.key("headers"), checkHeaderName)
	}
	if v := o.get("body"); v != nil {
		r.Body, r.HasBody = p.tree(v, a.key("body")), true
	}
	return r
}

// compile compiles every template now that input fields and step ids are
// known, so expressions naming an undeclared input field or a missing step
// fail at deploy.
func (p *parser) compile(d *Definition) {
	for _, pt := range p.pending {
		o := compileOptions{inputs: d.Input, steps: d.index, checkRef: true, wantBool: pt.wantBool, locals: pt.locals}
		t, err := compileTemplate(pt.t.src, o)
		if err != nil {
			p.fail(pt.n, pt.a, err)
			continue
		}
		pt.t.parts, pt.t.whole, pt.t.wantBool, pt.t.secrets = t.parts, t.whole, t.wantBool, t.secrets
		if s, ok := d.Step(pt.t.step); ok {
			for _, name := range t.secrets {
				if !slices.Contains(s.secrets, name) {
					s.secrets = append(s.secrets, name)
				}
			}
		}
		if pt.check != nil {
			if err := pt.check(pt.t); err != nil {
				p.fail(pt.n, pt.a, err)
			}
		}
	}
}

// closest returns the id nearest to s, for "did you mean" hints.
func closest[V any](s string, ids map[string]V) string {
	names := make([]string, 0, len(ids))
	for id := range ids {
		names = append(names, id)
	}
	slices.Sort(names)
	return yamlnode.Nearest(s, names)
}
