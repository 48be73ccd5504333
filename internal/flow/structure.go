package flow

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
	"gopkg.in/yaml.v3"
)

// branchNameRE is what a parallel branch may be called: it shows in the
// output (steps.ID.output.branches.NAME) and in the history.
var branchNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`)

// localNameRE is what a foreach may call its item: a plain expression name.
var localNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// reservedNames are the names expressions already see, which an item
// name would hide.
func reservedNames() []string {
	return []string{"input", "vars", "steps", "instance", "user", "secrets", "locals",
		"true", "false", "nil", "now", "len", "not", "and", "or", "in", "matches", "contains", "let"}
}

// parallel reads a parallel step: its branches, a mapping of names to
// step lists, and its join.
func (p *parser) parallel(d *Definition, id string, o object, n *yaml.Node, a at) *Parallel {
	pl := &Parallel{Join: JoinAll}
	if v := o.get("join"); v != nil {
		if j, ok := p.literal(v, a.key("join")); ok {
			if j != JoinAll && j != JoinAny {
				p.errf(v, a.key("join"), "%q: want all (wait for every branch) or any (the first to complete wins)", j)
			} else {
				pl.Join = j
			}
		}
	}
	v := o.get("branches")
	if v == nil {
		p.errf(n, a.key("branches"), "required: a mapping of branch names to lists of steps")
		return pl
	}
	bo, ok := p.mapping(v, a.key("branches"))
	if !ok {
		return pl
	}
	if len(bo.keys) == 0 {
		p.errf(v, a.key("branches"), "want at least one branch")
	}
	if len(bo.keys) > MaxBranches {
		p.errf(v, a.key("branches"), "%d branches: at most %d", len(bo.keys), MaxBranches)
	}
	for _, name := range bo.keys {
		ba := a.key("branches").key(name)
		if len(name) > 64 || !branchNameRE.MatchString(name) {
			p.errf(bo.keyNode(name), ba, "%q is not a branch name (letters, digits, _ and -)", name)
			continue
		}
		steps := p.nested(d, bo.get(name), ba, id+".branches."+name, id+"/"+name)
		pl.Branches = append(pl.Branches, Branch{Name: name, Steps: steps})
	}
	return pl
}

// foreach reads a foreach step: items, as, concurrency and its body.
func (p *parser) foreach(d *Definition, id string, o object, n *yaml.Node, a at) *Foreach {
	fe := &Foreach{As: "item", Concurrency: 1}
	fe.Items = p.requiredTemplate(o, n, a, "items", "an expression giving the list, such as ${{ input.lines }}")
	if v := o.get("as"); v != nil {
		if as, ok := p.literal(v, a.key("as")); ok {
			switch {
			case !localNameRE.MatchString(as) || len(as) > 64:
				p.errf(v, a.key("as"), "%q: want a name of letters, digits and _ (not starting with a digit)", as)
			case slices.Contains(reservedNames(), as) || slices.Contains(reservedNames(), strings.TrimSuffix(as, "_index")):
				p.errf(v, a.key("as"), "%q is a name expressions already use; choose another", as)
			case slices.Contains(p.locals, as):
				p.errf(v, a.key("as"), "%q is the item of an enclosing foreach; choose another", as)
			default:
				fe.As = as
			}
		}
	} else if slices.Contains(p.locals, fe.As) {
		p.errf(n, a.key("as"), "required here: an enclosing foreach already calls its item %q", fe.As)
	}
	if v := o.get("concurrency"); v != nil {
		if c, ok := p.integer(v, a.key("concurrency")); ok {
			if c < 1 || c > MaxConcurrency {
				p.errf(v, a.key("concurrency"), "%d: want 1 (items in order) to %d", c, MaxConcurrency)
			} else {
				fe.Concurrency = c
			}
		}
	}
	v := o.get("steps")
	if v == nil {
		p.errf(n, a.key("steps"), "required: the list of steps run for each item")
		return fe
	}
	fe.Steps = p.nested(d, v, a.key("steps"), id+".steps", id, fe.As, fe.As+"_index")
	return fe
}

// localsPatcher rewrites the foreach names an expression uses as plain
// names into reads of Env.Locals, so that the environment keeps its fixed
// shape (a misspelt name still fails at deploy) while each body sees its
// own item.
type localsPatcher []string

func (l localsPatcher) Visit(node *ast.Node) {
	id, ok := (*node).(*ast.IdentifierNode)
	if !ok || !slices.Contains(l, id.Value) {
		return
	}
	ast.Patch(node, &ast.MemberNode{Node: &ast.IdentifierNode{Value: "locals"}, Property: &ast.StringNode{Value: id.Value}})
}

// checkSteps checks what needs every step read: targets of next, cases,
// defaults and on_error (which must be in the same list as the step: a
// branch or a body is entered and left only at its ends), where the last
// task of the flow leads, and that every step of each list can be reached
// from the list's first.
func (p *parser) checkSteps(d *Definition) {
	// A broken edge makes the steps behind it look unreachable; reporting
	// those too would bury the real problem, so reachability is checked
	// only on a sound graph.
	sound := len(d.Steps) > 0
	for _, r := range p.refs {
		pos, ok := d.index[r.target]
		if ok && pos.scope == r.scope {
			continue
		}
		sound = false
		if ok {
			p.fail(r.n, r.a, fmt.Errorf("step %q is in %s, not in the same list as this step: a branch or a foreach body is left only at its end", r.target, scopeName(pos.scope)))
			continue
		}
		msg := fmt.Sprintf("no step %q", r.target)
		if best := closest(r.target, d.index); best != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", best)
		}
		p.fail(r.n, r.a, errors.New(msg))
	}
	for _, l := range p.lists {
		for i := range l.steps {
			s := &l.steps[i]
			if s.ID == "" || (s.Type == TypeTask && (s.Task == nil || len(s.Task.Actions) == 0)) ||
				(s.Type == TypeSwitch && (s.Switch == nil || len(s.Switch.Cases) == 0)) {
				sound = false
			}
		}
	}
	if !sound {
		return
	}
	last := &d.Steps[len(d.Steps)-1]
	if t := last.Task; t != nil {
		for _, action := range t.Actions {
			if _, ok := t.Next[action]; !ok {
				// An action is a decision; ending the instance without a
				// result because no next was written is more likely a
				// slip than intended. A return step says it explicitly.
				// (At the end of a branch or a body, running off the end
				// is how that part ends.)
				p.errf(&yaml.Node{Line: last.Line, Column: last.Column}, at{step: last.ID, field: "next"},
					"action %q leads nowhere: the task is the last step; map it in next (a return step ends the instance)", action)
			}
		}
	}
	for _, l := range p.lists {
		if len(l.steps) == 0 {
			continue
		}
		seen := map[string]bool{l.steps[0].ID: true}
		stack := []string{l.steps[0].ID}
		for len(stack) > 0 {
			id := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, next := range d.successors(id) {
				if !seen[next] {
					seen[next] = true
					stack = append(stack, next)
				}
			}
		}
		for i := range l.steps {
			if s := &l.steps[i]; !seen[s.ID] {
				p.errf(&yaml.Node{Line: s.Line, Column: s.Column}, at{step: s.ID}, "unreachable: no step leads here")
			}
		}
	}
}

// scopeName says which list a scope is, for messages.
func scopeName(scope string) string {
	if scope == "" {
		return "the flow's own steps"
	}
	if step, branch, ok := strings.Cut(scope, "/"); ok {
		return fmt.Sprintf("branch %s of parallel step %q", branch, step)
	}
	return fmt.Sprintf("the body of foreach step %q", scope)
}

// successors lists the ids of the steps that may follow step id in its
// list.
func (d *Definition) successors(id string) []string {
	s, ok := d.Step(id)
	if !ok {
		return nil
	}
	following := d.following(id)
	var out []string
	add := func(id string) {
		if id != "" {
			out = append(out, id)
		}
	}
	add(s.OnError)
	switch s.Type {
	case TypeReturn, TypeFail:
	case TypeTask:
		if s.Task == nil {
			break
		}
		for _, action := range s.Task.Actions {
			if next, ok := s.Task.Next[action]; ok {
				add(next)
			} else {
				add(following)
			}
		}
		if s.Task.Deadline != nil {
			add(s.Task.Deadline.OnDue)
		}
	case TypeSwitch:
		if s.Switch == nil {
			break
		}
		for _, c := range s.Switch.Cases {
			add(c.Next)
		}
		if s.Switch.Default != "" {
			add(s.Switch.Default)
		} else {
			add(following)
		}
	default:
		if s.Next != "" {
			add(s.Next)
		} else {
			add(following)
		}
	}
	return out
}

// Walk calls f for every step of the flow, nested ones included, in the
// order written (a parallel or foreach step before its branches or body).
func (d *Definition) Walk(f func(s *Step)) {
	var walk func(list []Step)
	walk = func(list []Step) {
		for i := range list {
			s := &list[i]
			f(s)
			if s.Parallel != nil {
				for _, b := range s.Parallel.Branches {
					walk(b.Steps)
				}
			}
			if s.Foreach != nil {
				walk(s.Foreach.Steps)
			}
		}
	}
	walk(d.Steps)
}
