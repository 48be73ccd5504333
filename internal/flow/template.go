package flow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// Limits on expressions. Flow authors are administrators, so these stop
// accidents (a runaway interpolation, a pasted megabyte) rather than a
// determined attacker; inputs from starters are bounded by request size.
const (
	// MaxNodes is the largest expression, in syntax-tree nodes, that
	// deploys.
	MaxNodes = 1000
	// MemoryBudget bounds what one evaluation may allocate in the
	// expression machine's own units (roughly, elements of lists, maps
	// and ranges it builds).
	MemoryBudget = 1_000_000
	// MaxStringBytes bounds a string an expression produces: an
	// interpolation, a string result, repeat().
	MaxStringBytes = 1 << 20
)

// Env is what expressions see. Its shape is fixed, so a misspelt top-level
// name (inptu.amount) or a field of instance or user that does not exist
// fails at deploy; the contents of input, vars and outputs are data and
// are only known while the instance runs.
type Env struct {
	// Input is the validated start input.
	Input map[string]any `expr:"input"`
	// Vars are the instance variables (set steps, task data).
	Vars map[string]any `expr:"vars"`
	// Steps holds the steps that have finished, by id.
	Steps map[string]StepState `expr:"steps"`
	// Instance describes the running instance.
	Instance Instance `expr:"instance"`
	// User is the principal who started the instance.
	User User `expr:"user"`
	// Locals holds, inside foreach bodies, the item and its index by the
	// names the foreach gives them. Expressions write them as plain
	// names (line, line_index): Parse rewrites those to locals.NAME.
	Locals map[string]any `expr:"locals"`
	// Secrets holds the named secrets the current step reads, by name:
	// the engine fills it from the store just before the step runs and
	// never persists it (see Step.SecretNames).
	Secrets map[string]string `expr:"secrets"`
}

// StepState is what expressions see of a finished step.
type StepState struct {
	Output map[string]any `expr:"output"`
	// Error is set when the step's last run failed and its on_error
	// caught the failure: message, type and, where one applies, status.
	Error map[string]any `expr:"error"`
}

// Instance is what expressions see of the running instance.
type Instance struct {
	ID        string    `expr:"id"`
	Workflow  string    `expr:"workflow"`
	Version   int       `expr:"version"`
	StartedAt time.Time `expr:"started_at"`
	StartedBy string    `expr:"started_by"`
}

// User is what expressions see of the principal who started the instance
// (docs/api.md).
type User struct {
	// ID is how permissions name the principal: user:alice, client:portal,
	// entra:8d2f….
	ID string `expr:"id"`
	// Kind is user, client or external.
	Kind string `expr:"kind"`
	// Subject is the name or subject the ID was built from.
	Subject string `expr:"subject"`
	// Issuer is "flowgate" or the trusted issuer's name.
	Issuer string   `expr:"issuer"`
	Roles  []string `expr:"roles"`
}

// Template is a string from a flow definition that may contain ${{ … }}
// expressions, compiled once when the definition is parsed. A template
// that is exactly one expression evaluates to the expression's own value;
// any other evaluates to a string with each expression's value formatted in
// place (strings as they are, numbers without trailing zeros, nil as
// nothing, maps and lists as JSON). A template without expressions is a
// literal.
type Template struct {
	src   string
	parts []part
	// whole is set when src is exactly one expression.
	whole *vm.Program
	// wantBool makes a whole expression's value have to be a boolean.
	wantBool bool
	// Where the template is written, for runtime errors.
	flow, step, field string
	// secrets are the names of the named secrets it reads.
	secrets []string
}

// part is a literal piece of text or a compiled expression.
type part struct {
	text string // literal text, or the expression's source
	prog *vm.Program
}

// rawPart is a part before compilation.
type rawPart struct {
	text   string
	isExpr bool
}

// NewTemplate compiles src on its own, without the checks a definition
// makes of input and step names. Parse compiles a definition's templates
// itself; this is for callers that need an ad hoc template.
func NewTemplate(src string) (*Template, error) {
	t, err := compileTemplate(src, compileOptions{})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// String returns the template's source text.
func (t *Template) String() string { return t.src }

// MarshalText encodes the template as its source, so that definitions
// and trees holding templates encode as they were written.
func (t *Template) MarshalText() ([]byte, error) { return []byte(t.src), nil }

// IsLiteral reports whether the template contains no expression; its value
// is then String().
func (t *Template) IsLiteral() bool { return t.whole == nil && !t.hasExpr() }

func (t *Template) hasExpr() bool {
	for _, p := range t.parts {
		if p.prog != nil {
			return true
		}
	}
	return false
}

// IsExpression reports whether the template is exactly one expression,
// so that its value keeps its own type.
func (t *Template) IsExpression() bool { return t.whole != nil }

// Evaluate computes the template's value in env (nil means an empty
// environment). Errors are *EvalError naming the flow, step and field the
// template is written in.
func (t *Template) Evaluate(env *Env) (any, error) {
	if env == nil {
		env = &Env{}
	}
	if t.whole != nil {
		v, err := run(t.whole, env)
		if err != nil {
			return nil, t.fail(err)
		}
		if t.wantBool {
			if _, ok := v.(bool); !ok {
				return nil, t.fail(fmt.Errorf("want true or false, got %s", typeName(v)))
			}
		}
		if s, ok := v.(string); ok && len(s) > MaxStringBytes {
			return nil, t.fail(fmt.Errorf("the value is longer than %d bytes", MaxStringBytes))
		}
		return v, nil
	}
	if len(t.parts) == 1 && t.parts[0].prog == nil {
		return t.parts[0].text, nil
	}
	var b []byte
	for _, p := range t.parts {
		if p.prog == nil {
			b = append(b, p.text...)
		} else {
			v, err := run(p.prog, env)
			if err != nil {
				return nil, t.fail(err)
			}
			if b, err = appendValue(b, v); err != nil {
				return nil, t.fail(err)
			}
		}
		if len(b) > MaxStringBytes {
			return nil, t.fail(fmt.Errorf("the text is longer than %d bytes", MaxStringBytes))
		}
	}
	return string(b), nil
}

// EvaluateString computes the template and formats a non-string value the
// way interpolation does, for places that need text (a URL, a header, a
// title).
func (t *Template) EvaluateString(env *Env) (string, error) {
	v, err := t.Evaluate(env)
	if err != nil {
		return "", err
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	b, err := appendValue(nil, v)
	if err != nil {
		return "", t.fail(err)
	}
	return string(b), nil
}

// EvaluateTree returns a copy of value with every *Template in it
// evaluated, walking map[string]any and []any; everything else is kept as
// it is. Parse turns the strings of trees (http and return bodies, set
// values) into templates, so a tree from a Definition is compiled once and
// only evaluated here.
func EvaluateTree(value any, env *Env) (any, error) {
	switch v := value.(type) {
	case *Template:
		return v.Evaluate(env)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			y, err := EvaluateTree(x, env)
			if err != nil {
				return nil, err
			}
			out[k] = y
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			y, err := EvaluateTree(x, env)
			if err != nil {
				return nil, err
			}
			out[i] = y
		}
		return out, nil
	}
	return value, nil
}

// EvaluateMap evaluates templates by name (http headers, query and form,
// return headers). Values keep their own type, as Evaluate gives them; a
// query value may be a list.
func EvaluateMap(m map[string]*Template, env *Env) (map[string]any, error) {
	if m == nil {
		return nil, nil
	}
	out := make(map[string]any, len(m))
	for k, t := range m {
		v, err := t.Evaluate(env)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

func (t *Template) fail(err error) error {
	return &EvalError{Flow: t.flow, Step: t.step, Field: t.field, Expr: t.src, Err: exprMessage(err)}
}

// run evaluates one program with the memory budget. A VM per call keeps
// evaluation safe for concurrent instances without shared state.
func run(p *vm.Program, env *Env) (any, error) {
	m := vm.VM{MemoryBudget: MemoryBudget}
	return m.Run(p, env)
}

// cleanError keeps expr's one-line message and drops its multi-line
// source snippet, which suits neither logs nor a deploy error list; the
// original stays reachable with errors.As.
type cleanError struct {
	msg string
	err error
}

func (e *cleanError) Error() string { return e.msg }
func (e *cleanError) Unwrap() error { return e.err }

func exprMessage(err error) error {
	var fe *file.Error
	if errors.As(err, &fe) {
		return &cleanError{msg: fe.Message, err: err}
	}
	return err
}

// compileOptions carries what a definition knows when compiling: the
// declared input fields and step ids (for reference checks), and whether
// the value must be a boolean.
type compileOptions struct {
	inputs map[string]Field
	steps  map[string]stepPos
	// locals are the foreach item and index names the expression may
	// use as plain names (see Env.Locals).
	locals   []string
	checkRef bool
	wantBool bool
}

// splitTemplate cuts src into literal text and ${{ … }} expressions. The
// closing }} is found outside string literals and braces, so an
// expression may contain map literals and strings with "}}".
func splitTemplate(src string) ([]rawPart, error) {
	var parts []rawPart
	rest := src
	for {
		i := strings.Index(rest, "${{")
		if i < 0 {
			if rest != "" {
				parts = append(parts, rawPart{text: rest})
			}
			return parts, nil
		}
		if i > 0 {
			parts = append(parts, rawPart{text: rest[:i]})
		}
		body := rest[i+3:]
		end, err := exprEnd(body)
		if err != nil {
			return nil, err
		}
		code := strings.TrimSpace(body[:end])
		if code == "" {
			return nil, errors.New("empty ${{ }}")
		}
		parts = append(parts, rawPart{text: code, isExpr: true})
		rest = body[end+2:]
	}
}

// exprEnd returns the index of the }} that closes an expression.
func exprEnd(s string) (int, error) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\'', '`':
			j := i + 1
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' && c != '`' {
					j++
				}
			}
			if j >= len(s) {
				return 0, errors.New("unterminated string in ${{ … }}")
			}
			i = j
		case '{':
			depth++
		case '}':
			if depth > 0 {
				depth--
			} else if i+1 < len(s) && s[i+1] == '}' {
				return i, nil
			}
		}
	}
	return 0, errors.New("${{ without a closing }}")
}

func compileTemplate(src string, o compileOptions) (*Template, error) {
	raw, err := splitTemplate(src)
	if err != nil {
		return nil, err
	}
	t := &Template{src: src, wantBool: o.wantBool}
	if len(raw) == 1 && raw[0].isExpr {
		p, err := compileExpr(raw[0].text, o)
		if err != nil {
			return nil, err
		}
		t.whole = p
		t.parts = []part{{text: raw[0].text, prog: p}}
		t.secrets = secretNames(p.Node(), nil)
		return t, nil
	}
	if o.wantBool {
		return nil, errors.New("want one ${{ … }} expression giving true or false")
	}
	for _, r := range raw {
		if !r.isExpr {
			t.parts = append(t.parts, part{text: r.text})
			continue
		}
		p, err := compileExpr(r.text, o)
		if err != nil {
			return nil, err
		}
		t.parts = append(t.parts, part{text: r.text, prog: p})
		t.secrets = secretNames(p.Node(), t.secrets)
	}
	if len(t.parts) == 0 {
		t.parts = []part{{text: ""}}
	}
	return t, nil
}

func compileExpr(code string, o compileOptions) (*vm.Program, error) {
	opts := []expr.Option{
		expr.Env(Env{}),
		expr.MaxNodes(MaxNodes),
		// All times are UTC (docs/api.md); now() and date() follow.
		expr.Timezone("UTC"),
		// The built-in repeat checks its count but not the size of what
		// it builds; this one bounds the result.
		expr.DisableBuiltin("repeat"),
		expr.Function("repeat", safeRepeat, new(func(string, int) string)),
	}
	if len(o.locals) > 0 {
		opts = append(opts, expr.Patch(localsPatcher(o.locals)))
	}
	if o.wantBool {
		// AsBool refuses at deploy an expression whose type is known not
		// to be boolean, but at run time it casts, and its cast error
		// ("invalid operation: bool(string)") says little. So check with
		// it and run a program compiled without it, whose result Evaluate
		// checks with a clearer message.
		if _, err := expr.Compile(code, append(opts, expr.AsBool())...); err != nil {
			return nil, fmt.Errorf("${{ %s }}: %w", shorten(code, 80), exprMessage(err))
		}
	}
	if o.checkRef {
		for _, m := range dashedStepRE.FindAllStringSubmatch(code, -1) {
			if _, ok := o.steps[m[1]]; ok {
				return nil, fmt.Errorf("${{ %s }}: write steps[%q]: steps.%s reads as steps.%s minus %s",
					shorten(code, 80), m[1], m[1], m[1][:strings.IndexByte(m[1], '-')], m[1][strings.IndexByte(m[1], '-')+1:])
			}
		}
	}
	p, err := expr.Compile(code, opts...)
	if err != nil {
		return nil, fmt.Errorf("${{ %s }}: %w", shorten(code, 80), exprMessage(err))
	}
	if err := checkSecretRefs(p.Node()); err != nil {
		return nil, fmt.Errorf("${{ %s }}: %w", shorten(code, 80), err)
	}
	if o.checkRef {
		if err := checkRefs(p.Node(), o); err != nil {
			return nil, fmt.Errorf("${{ %s }}: %w", shorten(code, 80), err)
		}
	}
	return p, nil
}

// dashedStepRE finds steps.ID where ID contains "-", which expressions
// read as a subtraction.
var dashedStepRE = regexp.MustCompile(`\bsteps\.([A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)+)`)

func safeRepeat(args ...any) (any, error) {
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("repeat: want a string, got %s", typeName(args[0]))
	}
	n, ok := args[1].(int)
	if !ok || n < 0 {
		return nil, errors.New("repeat: want a count of 0 or more")
	}
	if n > 0 && len(s) > MaxStringBytes/n {
		return nil, fmt.Errorf("repeat: the result would be longer than %d bytes", MaxStringBytes)
	}
	return strings.Repeat(s, n), nil
}

// refChecker finds input.NAME and steps.ID (or steps["ID"]) whose name is
// not declared: input rejects unknown fields at start and steps only hold
// steps of the flow, so such a reference can only ever be nil.
type refChecker struct {
	o   compileOptions
	err error
}

func (r *refChecker) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok || r.err != nil {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok {
		return
	}
	prop, ok := m.Property.(*ast.StringNode)
	if !ok {
		return
	}
	switch id.Value {
	case "input":
		if _, ok := r.o.inputs[prop.Value]; !ok {
			r.err = fmt.Errorf("input has no field %q", prop.Value)
		}
	case "steps":
		if _, ok := r.o.steps[prop.Value]; !ok {
			r.err = fmt.Errorf("no step %q", prop.Value)
		}
	}
}

func checkRefs(n ast.Node, o compileOptions) error {
	r := &refChecker{o: o}
	ast.Walk(&n, r)
	return r.err
}

// secretVisitor finds the named secrets an expression reads. The engine
// reads exactly these from the store before the step runs, so a name must
// be known without running the expression: secrets.NAME or
// secrets["NAME"], nothing computed.
type secretVisitor struct {
	names  []string
	byName int // secrets.NAME reads
	idents int // uses of the identifier secrets
}

func (v *secretVisitor) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if n.Value == "secrets" {
			v.idents++
		}
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		if !ok || id.Value != "secrets" {
			return
		}
		if prop, ok := n.Property.(*ast.StringNode); ok {
			v.byName++
			if !slices.Contains(v.names, prop.Value) {
				v.names = append(v.names, prop.Value)
			}
		}
	}
}

// checkSecretRefs refuses a use of secrets other than reading one by its
// name (the whole map, a computed name).
func checkSecretRefs(n ast.Node) error {
	v := &secretVisitor{}
	ast.Walk(&n, v)
	if v.idents != v.byName {
		return errors.New("read a secret by its name: secrets.NAME (the secrets cannot be listed or named by an expression)")
	}
	return nil
}

// secretNames appends to names the named secrets n reads, once each.
func secretNames(n ast.Node, names []string) []string {
	v := &secretVisitor{names: names}
	ast.Walk(&n, v)
	return v.names
}

// appendValue formats v for interpolation.
func appendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return b, nil
	case string:
		return append(b, x...), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case uint64:
		return strconv.AppendUint(b, x, 10), nil
	case float64:
		return appendFloat(b, x), nil
	case float32:
		return appendFloat(b, float64(x)), nil
	case json.Number:
		return append(b, x...), nil
	case time.Time:
		return x.UTC().AppendFormat(b, time.RFC3339Nano), nil
	case time.Duration:
		return append(b, x.String()...), nil
	case []byte:
		return append(b, x...), nil
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Map, reflect.Slice, reflect.Array, reflect.Struct:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		// Interpolated JSON lands in messages and bodies, not HTML.
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return b, fmt.Errorf("cannot format %s as JSON: %w", typeName(v), err)
		}
		return append(b, bytes.TrimRight(buf.Bytes(), "\n")...), nil
	}
	return fmt.Append(b, v), nil
}

// appendFloat writes a number the way JSON and JavaScript do: 1500 not
// 1500.0 or 1.5e+03, 0.1 not 0.10000000000000001.
func appendFloat(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	}
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

// typeName names a value's type in JSON terms, for messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64, float32, int, int64, int32, int16, int8, uint, uint64, uint32, uint16, uint8, json.Number:
		return "number"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case time.Time:
		return "time"
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}
