package flow

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/flowgate/flowgate/internal/principal"
	"github.com/flowgate/flowgate/internal/yamlnode"
)

// Parse reads a flow definition, YAML or JSON (JSON is taken as YAML, which
// it nearly is; the filename's extension or a leading "{" says which), and
// returns it validated and with every expression compiled. The error lists
// every problem found, as *Problem values joined with errors.Join and
// sorted by position, each naming the flow, the step and the field.
//
// Parse is strict: an unknown key or step type is an error, because a
// misspelt key in a workflow silently doing nothing is worse than a
// refused deploy.
func Parse(data []byte, filename string) (*Definition, error) {
	p := &parser{file: filename}
	root := p.document(data)
	if root == nil {
		return nil, joinProblems(p.problems)
	}
	d := p.definition(root)
	p.checkSteps(d)
	p.compile(d)
	p.checkScheduleInputs(d)
	for _, pr := range p.problems {
		// Problems found before the name was read (a second document)
		// name the flow too.
		if pr.Flow == "" {
			pr.Flow = p.flow
		}
	}
	if len(p.problems) > 0 {
		return nil, joinProblems(p.problems)
	}
	// The tree was walked without problems, so none can come up here.
	d.Document, _ = plain(root, func(*yaml.Node, string, error) {}).(map[string]any)
	d.servers = p.servers
	return d, nil
}

// parser walks the yaml.Node tree by hand rather than unmarshalling into
// structs, because only the node tree keeps the line and column of every
// key and value, which every problem report needs.
type parser struct {
	file     string
	flow     string
	problems []*Problem
	// pending templates are compiled after all steps are read, since an
	// expression may name any step.
	pending []pendingTemplate
	// refs are step ids named by next, cases and defaults, checked once
	// all ids are known.
	refs []stepRef
	// servers are the OAuth servers steps name, where they name them.
	servers []serverUse
	// scheduleInputs are checked against the input fields once read.
	scheduleInputs []scheduleInput
	// scope and locals are those of the step list being read (see
	// Definition.Scope and Definition.Locals).
	scope  string
	locals []string
	// lists are the step lists read, for the checks that need all ids.
	lists []stepList
}

// stepList is one list of steps: the flow's own, a branch, a foreach body.
type stepList struct {
	steps []Step
	scope string
	// label names the list in problems: "steps", "reviews.branches.legal".
	label string
}

type pendingTemplate struct {
	t        *Template
	locals   []string
	n        *yaml.Node
	a        at
	wantBool bool
	// check runs after a successful compile (assignee syntax, literal
	// URLs and times).
	check func(*Template) error
}

type stepRef struct {
	// scope is the list of the step the reference is in: the target
	// must be in the same one.
	scope  string
	target string
	n      *yaml.Node
	a      at
}

// at is where in the definition a value is: the step label and the key
// path inside it.
type at struct{ step, field string }

func (a at) key(k string) at {
	if a.field == "" {
		return at{a.step, k}
	}
	return at{a.step, a.field + "." + k}
}

func (a at) index(i int) at { return at{a.step, a.field + "[" + strconv.Itoa(i) + "]"} }

func (p *parser) errf(n *yaml.Node, a at, format string, args ...any) {
	p.fail(n, a, fmt.Errorf(format, args...))
}

func (p *parser) fail(n *yaml.Node, a at, err error) {
	pr := &Problem{File: p.file, Flow: p.flow, Step: a.step, Field: a.field, Err: err}
	if n != nil {
		pr.Line, pr.Column = n.Line, n.Column
	}
	p.problems = append(p.problems, pr)
}

// document parses data into its root mapping; nil after a problem.
func (p *parser) document(data []byte) *yaml.Node {
	trimmed := bytes.TrimLeft(data, " \t\r\n\ufeff")
	if strings.EqualFold(filepath.Ext(p.file), ".json") || bytes.HasPrefix(trimmed, []byte("{")) {
		// YAML refuses tabs as indentation, and JSON indented with tabs is
		// common (json.MarshalIndent). In valid JSON a tab can only be
		// whitespace (inside strings it must be escaped), so a space is
		// equivalent and keeps every line and column.
		data = bytes.ReplaceAll(data, []byte("\t"), []byte(" "))
	}
	root, extra, err := yamlnode.Document(data)
	if err != nil {
		pr := &Problem{File: p.file, Err: err}
		if se := (*yamlnode.SyntaxError)(nil); errors.As(err, &se) {
			pr.Line = se.Line
		}
		p.problems = append(p.problems, pr)
		return nil
	}
	if extra != nil {
		p.errf(extra, at{}, "one flow per file: a second YAML document starts here")
	}
	if root == nil {
		p.errf(nil, at{}, "the file is empty")
		return nil
	}
	if root.Kind != yaml.MappingNode {
		p.errf(root, at{}, "a flow definition is a mapping with name and steps, not %s", yamlnode.Describe(root))
		return nil
	}
	return root
}

// object is a mapping's entries by key, with the keys in order.
type object struct {
	byKey map[string]yamlnode.Pair
	keys  []string
}

func (o object) get(k string) *yaml.Node {
	if pr, ok := o.byKey[k]; ok {
		return pr.Value
	}
	return nil
}

func (o object) keyNode(k string) *yaml.Node { return o.byKey[k].Key }

// mapping reads a mapping's entries with the shared walker, which expands
// merge keys and reports duplicate keys and keys that are not names.
func (p *parser) mapping(n *yaml.Node, a at) (object, bool) {
	o := object{byKey: map[string]yamlnode.Pair{}}
	n = yamlnode.Resolve(n)
	if n.Kind != yaml.MappingNode {
		p.errf(n, a, "want a mapping, not %s", yamlnode.Describe(n))
		return o, false
	}
	for _, pr := range yamlnode.Pairs(n, p.report(a)) {
		o.byKey[pr.Key.Value] = pr
		o.keys = append(o.keys, pr.Key.Value)
	}
	return o, true
}

// report hands the shared walker's problems to fail, at a or at the
// entry's key below it.
func (p *parser) report(a at) yamlnode.Report {
	return func(n *yaml.Node, key string, err error) {
		if key != "" {
			p.fail(n, a.key(key), err)
			return
		}
		p.fail(n, a, err)
	}
}

// allow reports keys of o not in allowed, with a "did you mean" when one
// is close, and the full list when not.
func (p *parser) allow(o object, a at, what string, allowed ...string) {
	for _, k := range o.keys {
		if !slices.Contains(allowed, k) {
			p.fail(o.keyNode(k), a.key(k), yamlnode.UnknownKey(k, what, allowed))
		}
	}
}

// text reads a scalar as text. Numbers are accepted as their digits, since
// YAML makes 123 a number where the author meant a name.
func (p *parser) text(n *yaml.Node, a at) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || n.Tag == "!!bool" {
		p.errf(n, a, "want a string, not %s", yamlnode.Describe(n))
		return "", false
	}
	return n.Value, true
}

// literal reads text where expressions are not allowed: names, ids,
// durations. Saying so beats a later "no step ${{ … }}".
func (p *parser) literal(n *yaml.Node, a at) (string, bool) {
	s, ok := p.text(n, a)
	if ok && strings.Contains(s, "${{") {
		p.errf(n, a, "expressions are not allowed here")
		return "", false
	}
	return s, ok
}

func (p *parser) boolean(n *yaml.Node, a at) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		p.errf(n, a, "want true or false, not %s", yamlnode.Describe(n))
		return false, false
	}
	return n.Value == "true", true
}

func (p *parser) integer(n *yaml.Node, a at) (int, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		if i, err := strconv.ParseInt(n.Value, 0, 32); err == nil {
			return int(i), true
		}
	}
	p.errf(n, a, "want a whole number, not %s", yamlnode.Describe(n))
	return 0, false
}

// template reads a string that may contain expressions; it is compiled
// once all step ids are known.
func (p *parser) template(n *yaml.Node, a at, check func(*Template) error) *Template {
	s, ok := p.text(n, a)
	if !ok {
		return nil
	}
	return p.templateOf(s, n, a, false, check)
}

func (p *parser) templateOf(s string, n *yaml.Node, a at, wantBool bool, check func(*Template) error) *Template {
	t := &Template{src: s, flow: p.flow, step: a.step, field: a.field}
	p.pending = append(p.pending, pendingTemplate{t: t, locals: p.locals, n: n, a: a, wantBool: wantBool, check: check})
	return t
}

// templateMap reads headers, query and form: names to templates, with
// scalars of any kind taken as text (X-Count: 5).
func (p *parser) templateMap(n *yaml.Node, a at, checkKey func(string) error) map[string]*Template {
	o, ok := p.mapping(n, a)
	if !ok {
		return nil
	}
	out := make(map[string]*Template, len(o.keys))
	for _, k := range o.keys {
		ka := a.key(k)
		if checkKey != nil {
			if err := checkKey(k); err != nil {
				p.fail(o.keyNode(k), ka, err)
				continue
			}
		}
		v := o.get(k)
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			p.errf(v, ka, "want a string, not %s", yamlnode.Describe(v))
			continue
		}
		out[k] = p.templateOf(v.Value, v, ka, false, nil)
	}
	return out
}

// tree reads a value of any shape (a body, a variable's value); its
// strings become templates.
func (p *parser) tree(n *yaml.Node, a at) any {
	n = yamlnode.Resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		o, _ := p.mapping(n, a)
		out := make(map[string]any, len(o.keys))
		for _, k := range o.keys {
			if strings.Contains(k, "${{") {
				p.errf(o.keyNode(k), a.key(k), "expressions are not allowed in keys")
				continue
			}
			out[k] = p.tree(o.get(k), a.key(k))
		}
		return out
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			out[i] = p.tree(c, a.index(i))
		}
		return out
	}
	v := scalar(n)
	if s, ok := v.(string); ok && strings.Contains(s, "${{") {
		return p.templateOf(s, n, a, false, nil)
	}
	return v
}

// scalar converts a YAML scalar to the Go value JSON would give, except
// that whole numbers stay int. Timestamps stay strings: the author wrote
// text, and JSON has no time type.
func scalar(n *yaml.Node) any {
	switch n.Tag {
	case "!!null":
		return nil
	case "!!bool":
		return n.Value == "true"
	case "!!int":
		if i, err := strconv.ParseInt(n.Value, 0, 64); err == nil {
			return int(i)
		}
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
			return f
		}
	case "!!float":
		var f float64
		if err := n.Decode(&f); err == nil {
			return f
		}
	}
	return n.Value
}

// plain converts a node tree to plain data (Definition.Document, enum
// values, defaults). Mappings go through the shared walker, so merge keys
// and duplicate keys mean the same here as everywhere; report gets its
// problems.
func plain(n *yaml.Node, report yamlnode.Report) any {
	n = yamlnode.Resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		out := map[string]any{}
		for _, p := range yamlnode.Pairs(n, report) {
			out[p.Key.Value] = plain(p.Value, report)
		}
		return out
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			out[i] = plain(c, report)
		}
		return out
	}
	return scalar(n)
}

var (
	flowNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	stepIDRE   = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`)
	// identRE is for names expressions reach with a dot: input and form
	// fields (vars.NAME after a task), set's variables.
	identRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	actionRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9 _.-]*$`)
	// serverRE matches the names config gives oauth_servers.
	serverRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
)

func (p *parser) definition(root *yaml.Node) *Definition {
	d := &Definition{File: p.file, Input: map[string]Field{}, index: map[string]stepPos{}}
	o, _ := p.mapping(root, at{})
	// The name first, so every later problem can name the flow.
	if n := o.get("name"); n != nil {
		if s, ok := p.literal(n, at{field: "name"}); ok {
			switch {
			case len(s) > 64:
				p.errf(n, at{field: "name"}, "%q is longer than 64 characters", s)
			case !flowNameRE.MatchString(s):
				p.errf(n, at{field: "name"}, "%q must be lower-case letters, digits and . _ - (starting with a letter or digit)", s)
			default:
				p.flow = s
			}
			d.Name = s
		}
	} else {
		p.errf(root, at{field: "name"}, "required")
	}
	if k := o.keyNode("version"); k != nil {
		p.errf(k, at{field: "version"}, "the server numbers versions on deploy; remove version")
		delete(o.byKey, "version")
		o.keys = slices.DeleteFunc(o.keys, func(s string) bool { return s == "version" })
	}
	p.allow(o, at{}, "a flow", "name", "title", "description", "permissions", "input", "triggers", "steps")
	if n := o.get("title"); n != nil {
		d.Title, _ = p.literal(n, at{field: "title"})
	}
	if d.Title == "" {
		d.Title = d.Name
	}
	if n := o.get("description"); n != nil {
		d.Description, _ = p.text(n, at{field: "description"})
	}
	if n := o.get("permissions"); n != nil {
		d.Permissions = p.permissions(n)
	}
	if n := o.get("input"); n != nil {
		d.Input, d.InputOrder = p.fields(n, at{field: "input"})
	}
	if n := o.get("triggers"); n != nil {
		p.triggers(d, yamlnode.Resolve(n))
	}
	n := o.get("steps")
	if n == nil {
		p.errf(root, at{field: "steps"}, "required: a flow needs at least one step")
		return d
	}
	if n.Kind != yaml.SequenceNode {
		p.errf(n, at{field: "steps"}, "want a list of steps, not %s", yamlnode.Describe(n))
		return d
	}
	if len(n.Content) == 0 {
		p.errf(n, at{field: "steps"}, "a flow needs at least one step")
		return d
	}
	d.Steps = p.stepList(d, n, "steps")
	return d
}

// stepList reads a list of steps in the parser's current scope and
// locals; label names the list in problems.
func (p *parser) stepList(d *Definition, n *yaml.Node, label string) []Step {
	steps := make([]Step, len(n.Content))
	p.lists = append(p.lists, stepList{steps: steps, scope: p.scope, label: label})
	for i, sn := range n.Content {
		p.step(d, steps, i, label, yamlnode.Resolve(sn))
	}
	return steps
}

// nested reads the step list of a parallel branch or a foreach body
// (label names it, scope is its Definition.Scope, local adds a foreach's
// names), refusing one that is not a non-empty list.
func (p *parser) nested(d *Definition, n *yaml.Node, a at, label, scope string, local ...string) []Step {
	n = yamlnode.Resolve(n)
	if n.Kind != yaml.SequenceNode {
		p.errf(n, a, "want a list of steps, not %s", yamlnode.Describe(n))
		return nil
	}
	if len(n.Content) == 0 {
		p.errf(n, a, "want at least one step")
		return nil
	}
	outerScope, outerLocals := p.scope, p.locals
	p.scope = scope
	p.locals = append(slices.Clip(outerLocals), local...)
	defer func() { p.scope, p.locals = outerScope, outerLocals }()
	return p.stepList(d, n, label)
}

// ref notes a step id a step's key names, checked once every id is known.
func (p *parser) ref(target string, n *yaml.Node, a at) {
	p.refs = append(p.refs, stepRef{scope: p.scope, target: target, n: n, a: a})
}

func (p *parser) permissions(n *yaml.Node) Permissions {
	var perms Permissions
	a := at{field: "permissions"}
	o, ok := p.mapping(n, a)
	if !ok {
		return perms
	}
	p.allow(o, a, "permissions", "start")
	if v := o.get("start"); v != nil {
		perms.Start = p.stringList(v, a.key("start"), principal.Check)
	}
	return perms
}

// stringList reads a list of literal strings, checking each.
func (p *parser) stringList(n *yaml.Node, a at, check func(string) error) []string {
	if n.Kind != yaml.SequenceNode {
		p.errf(n, a, "want a list, not %s", yamlnode.Describe(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, c := range n.Content {
		c = yamlnode.Resolve(c)
		s, ok := p.literal(c, a.index(i))
		if !ok {
			continue
		}
		if check != nil {
			if err := check(s); err != nil {
				p.fail(c, a.index(i), err)
				continue
			}
		}
		out = append(out, s)
	}
	return out
}

// fields reads input or a task form.
func (p *parser) fields(n *yaml.Node, a at) (map[string]Field, []string) {
	out := map[string]Field{}
	if yamlnode.IsNull(n) {
		return out, nil
	}
	o, ok := p.mapping(n, a)
	if !ok {
		return out, nil
	}
	var order []string
	for _, name := range o.keys {
		fa := a.key(name)
		if len(name) > 64 || !identRE.MatchString(name) {
			p.errf(o.keyNode(name), fa, "a field name is letters, digits and _ (not starting with a digit), at most 64, so expressions can say %s.NAME", strings.SplitN(a.field, ".", 2)[0])
			continue
		}
		f, ok := p.field(o.get(name), fa)
		if !ok {
			continue
		}
		out[name] = f
		order = append(order, name)
	}
	return out, order
}

func (p *parser) field(n *yaml.Node, a at) (Field, bool) {
	var f Field
	o, ok := p.mapping(n, a)
	if !ok {
		return f, false
	}
	p.allow(o, a, "a field", "type", "required", "description", "enum", "default")
	tn := o.get("type")
	if tn == nil {
		p.errf(n, a.key("type"), "required (one of %s)", strings.Join(fieldTypes(), ", "))
		return f, false
	}
	t, ok := p.literal(tn, a.key("type"))
	if !ok {
		return f, false
	}
	if !slices.Contains(fieldTypes(), t) {
		p.errf(tn, a.key("type"), "unknown type %q (want one of %s)", t, strings.Join(fieldTypes(), ", "))
		return f, false
	}
	f.Type = t
	good := true
	if v := o.get("required"); v != nil {
		f.Required, ok = p.boolean(v, a.key("required"))
		good = good && ok
	}
	if v := o.get("description"); v != nil {
		f.Description, _ = p.text(v, a.key("description"))
	}
	if v := o.get("enum"); v != nil {
		ea := a.key("enum")
		switch {
		case v.Kind != yaml.SequenceNode || len(v.Content) == 0:
			p.errf(v, ea, "want a list of allowed values")
			good = false
		case t != "string" && t != "number" && t != "integer":
			p.errf(v, ea, "only string, number and integer fields take an enum")
			good = false
		default:
			for i, c := range v.Content {
				val, err := normalize(f.Type, plain(c, p.report(ea.index(i))))
				if err != nil {
					p.fail(c, ea.index(i), err)
					good = false
					continue
				}
				f.Enum = append(f.Enum, val)
			}
		}
	}
	if v := o.get("default"); v != nil {
		val, err := checkValue(f, plain(v, p.report(a.key("default"))))
		if err != nil {
			p.fail(v, a.key("default"), err)
			good = false
		}
		f.Default = val
	}
	return f, good
}

// step reads list[i]; label names the list.
func (p *parser) step(d *Definition, list []Step, i int, label string, n *yaml.Node) {
	s := &list[i]
	s.Line, s.Column = n.Line, n.Column
	a := at{step: label + "[" + strconv.Itoa(i) + "]"}
	if id := peekID(n); id != "" {
		// Problems found while reading the mapping (duplicate keys) can
		// already name the step.
		a = at{step: id}
	}
	o, ok := p.mapping(n, at{step: a.step})
	if !ok {
		return
	}
	a = p.stepID(d, list, i, label, o, n)
	tn := o.get("type")
	if tn == nil {
		p.errf(n, a.key("type"), "required (one of %s)", typeList())
		return
	}
	t, ok := p.literal(tn, a.key("type"))
	if !ok {
		return
	}
	s.Type = StepType(t)
	if !slices.Contains(stepTypes(), s.Type) {
		p.errf(tn, a.key("type"), "unknown step type %q (want one of %s)", t, typeList())
		return
	}
	if v := o.get("description"); v != nil {
		s.Description, _ = p.text(v, a.key("description"))
	}
	common := p.stepNext(s, i, &o, a)
	p.stepOnError(s, i, o, a)
	p.stepConfig(d, s, i, o, n, a, append(common, "on_error"))
}

// stepID reads a step's id, registers it in d's index, and returns where
// the step's problems are reported: at its id once it has a valid one.
func (p *parser) stepID(d *Definition, list []Step, i int, label string, o object, n *yaml.Node) at {
	a := at{step: label + "[" + strconv.Itoa(i) + "]"}
	v := o.get("id")
	if v == nil {
		p.errf(n, a.key("id"), "required")
		return a
	}
	id, ok := p.literal(v, a.key("id"))
	if !ok {
		return a
	}
	switch {
	case len(id) > 64:
		p.errf(v, a.key("id"), "%q is longer than 64 characters", id)
	case !stepIDRE.MatchString(id):
		p.errf(v, a.key("id"), "%q must be letters, digits, _ and -", id)
	default:
		if j, dup := d.index[id]; dup {
			// Ids are unique across the whole flow, branches and bodies
			// included: steps.<id> and the history name one step.
			p.errf(v, a.key("id"), "duplicate step id %q (also %s, line %d)", id, j.label, j.list[j.i].Line)
		} else {
			d.index[id] = stepPos{list: list, i: i, scope: p.scope, locals: p.locals,
				label: label + "[" + strconv.Itoa(i) + "]"}
		}
		list[i].ID = id
		a = at{step: id}
	}
	return a
}

// stepNext reads next where the step's type has one way on, and returns
// the keys every step of that type takes. next has a different meaning or
// none in some types: they say so rather than "unknown key".
func (p *parser) stepNext(s *Step, i int, o *object, a at) (common []string) {
	common = []string{"id", "type", "description"}
	refuse := func(msg string) {
		if k := o.keyNode("next"); k != nil {
			p.errf(k, a.key("next"), "%s", msg)
			delete(o.byKey, "next")
			o.keys = slices.DeleteFunc(o.keys, func(s string) bool { return s == "next" })
		}
	}
	switch s.Type {
	case TypeSwitch:
		refuse("a switch goes on by its cases and default, not next")
	case TypeReturn, TypeFail:
		refuse(fmt.Sprintf("a %s step ends the instance; nothing comes next", s.Type))
	case TypeTask:
		// Task reads its own next map.
	default:
		common = append(common, "next")
		if v := o.get("next"); v != nil {
			if id, ok := p.literal(v, a.key("next")); ok {
				s.Next = id
				p.ref(id, v, a.key("next"))
			}
		}
	}
	return common
}

// stepOnError reads on_error, which every step type takes: where a
// failure of the step leads instead of failing the instance.
func (p *parser) stepOnError(s *Step, i int, o object, a at) {
	v := o.get("on_error")
	if v == nil {
		return
	}
	id, ok := p.literal(v, a.key("on_error"))
	if !ok {
		return
	}
	if id == s.ID {
		// Catching a step's failure with itself retries it until the step
		// budget runs out; http has retry for that.
		p.errf(v, a.key("on_error"), "a step's failure cannot lead back to the step itself (use retry on an http step)")
		return
	}
	s.OnError = id
	p.ref(id, v, a.key("on_error"))
}

// stepConfig reads the keys of the step's type, refusing any other.
func (p *parser) stepConfig(d *Definition, s *Step, i int, o object, n *yaml.Node, a at, common []string) {
	what := fmt.Sprintf("a %s step", s.Type)
	allow := func(keys ...string) { p.allow(o, a, what, append(common, keys...)...) }
	switch s.Type {
	case TypeHTTP:
		allow("method", "url", "headers", "query", "body", "form", "timeout", "auth", "retry", "fail_on_status")
		s.HTTP = p.httpStep(o, n, a)
	case TypeOAuthServerLogin:
		allow("server", "scope")
		s.OAuthServerLogin = &OAuthServerLogin{Server: p.server(o, n, a), Scope: p.optionalTemplate(o, a, "scope")}
	case TypeOAuthUserLogin:
		allow("server", "scope", "use_prompt")
		s.OAuthUserLogin = p.oauthUserLogin(o, n, a)
	case TypeOAuthRefresh:
		allow("server", "refresh_token")
		s.OAuthRefresh = &OAuthRefresh{Server: p.server(o, n, a),
			RefreshToken: p.requiredTemplate(o, n, a, "refresh_token", "an expression giving the refresh token, such as ${{ vars.refresh_token }}")}
	case TypeTask:
		allow("next", "title", "assignees", "actions", "form", "due", "remind", "escalate", "on_due")
		s.Task = p.task(i, o, n, a)
	case TypeSwitch:
		allow("cases", "default")
		s.Switch = p.switchStep(i, o, n, a)
	case TypeSet:
		allow("vars")
		s.Set = p.setStep(o, n, a)
	case TypeWait:
		allow("duration", "until")
		s.Wait = p.waitStep(o, n, a)
	case TypeReturn:
		allow("status", "headers", "body")
		s.Return = p.returnStep(o, a)
	case TypeEmail:
		allow("to", "cc", "subject", "body", "html")
		s.Email = p.emailStep(o, n, a)
	case TypeFlow:
		allow("flow", "input")
		s.SubFlow = p.subFlow(o, n, a)
	case TypeFail:
		allow("error")
		s.Fail = &Fail{Error: p.requiredTemplate(o, n, a, "error", "the message the instance fails with")}
	case TypeParallel:
		allow("branches", "join")
		s.Parallel = p.parallel(d, s.ID, o, n, a)
	case TypeForeach:
		allow("items", "as", "concurrency", "steps")
		s.Foreach = p.foreach(d, s.ID, o, n, a)
	}
}

// subFlow reads a flow step: the child flow's name, literal so that a
// deploy can name it, and its input, a mapping.
func (p *parser) subFlow(o object, n *yaml.Node, a at) *SubFlow {
	sf := &SubFlow{}
	v := o.get("flow")
	if v == nil {
		p.errf(n, a.key("flow"), "required: the name of the deployed flow to start")
	} else if name, ok := p.literal(v, a.key("flow")); ok {
		if len(name) > 64 || !flowNameRE.MatchString(name) {
			p.errf(v, a.key("flow"), "%q is not a flow name (lower-case letters, digits and . _ -)", name)
		}
		sf.Flow = name
	}
	if v := o.get("input"); v != nil {
		if yamlnode.Resolve(v).Kind != yaml.MappingNode {
			p.errf(v, a.key("input"), "want a mapping of the child flow's input fields, not %s", yamlnode.Describe(v))
		} else {
			sf.Input = p.tree(v, a.key("input"))
		}
	}
	return sf
}

func (p *parser) oauthUserLogin(o object, n *yaml.Node, a at) *OAuthUserLogin {
	c := &OAuthUserLogin{Server: p.server(o, n, a), Scope: p.optionalTemplate(o, a, "scope")}
	if v := o.get("use_prompt"); v != nil {
		if b, ok := p.boolean(v, a.key("use_prompt")); ok {
			c.UsePrompt = &b
		}
	}
	return c
}

// optionalTemplate reads key as a template; nil when it is absent.
func (p *parser) optionalTemplate(o object, a at, key string) *Template {
	if v := o.get(key); v != nil {
		return p.template(v, a.key(key), nil)
	}
	return nil
}

// requiredTemplate reads key as a template, reporting it as required
// (what it is for: want) when absent.
func (p *parser) requiredTemplate(o object, n *yaml.Node, a at, key, want string) *Template {
	if v := o.get(key); v != nil {
		return p.template(v, a.key(key), nil)
	}
	p.errf(n, a.key(key), "required: %s", want)
	return nil
}

// peekID returns a step mapping's id when it is a plain valid one.
func peekID(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := n.Content[i], yamlnode.Resolve(n.Content[i+1]); k.Value == "id" && v.Kind == yaml.ScalarNode && stepIDRE.MatchString(v.Value) {
			return v.Value
		}
	}
	return ""
}

func typeList() string {
	var names []string
	for _, t := range stepTypes() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}

// server reads an OAuth step's required server name. Whether the server is
// configured is for the deploying code to check (Definition.CheckServers),
// since the servers change without the flow changing.
func (p *parser) server(o object, n *yaml.Node, a at) string {
	v := o.get("server")
	if v == nil {
		p.errf(n, a.key("server"), "required: the name of an oauth_servers entry")
		return ""
	}
	s, ok := p.literal(v, a.key("server"))
	if !ok {
		return ""
	}
	if len(s) > 64 || !serverRE.MatchString(s) {
		p.errf(v, a.key("server"), "%q is not a server name (letters, digits, . _ -)", s)
		return ""
	}
	p.servers = append(p.servers, serverUse{server: s, step: a.step, field: a.key("server").field, line: v.Line, column: v.Column})
	return s
}
