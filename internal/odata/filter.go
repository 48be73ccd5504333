package odata

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/flowgate/flowgate/internal/store"
)

// The $filter grammar is the part of OData's ABNF (OData v4.01 part 2,
// common expressions) that the Data API supports, parsed by recursive
// descent straight into the store's filter tree (docs/design.md says
// why it is not a library):
//
//	expr    = and { "or" and }
//	and     = unary { "and" unary }
//	unary   = "not" unary | compare
//	compare = operand [ ("eq"|"ne"|"gt"|"ge"|"lt"|"le") operand ]
//	operand = "(" expr ")" | call | property | literal
//	call    = ("contains"|"startswith"|"endswith") "(" property "," string ")"
//
// A comparison needs a property on one side and a literal on the other;
// a boolean property alone means "property eq true". Everything else the
// standard has (arithmetic, has, in, lambda operators, other functions,
// paths) is recognised and refused as not implemented, so a client learns
// it asked for a feature, not that its query is malformed.

// maxFilterLen and maxDepth bound the work one $filter can cause.
const (
	maxFilterLen = 8192
	maxDepth     = 64
)

// Error is a query the Data API refuses: Status 400 for a malformed one,
// 501 for a feature it does not implement.
type Error struct {
	Status  int
	Code    string
	Message string
	// Target names the query option or property at fault.
	Target string
}

func (e *Error) Error() string { return e.Message }

func badRequest(target, format string, args ...any) *Error {
	return &Error{Status: 400, Code: "BadRequest", Message: fmt.Sprintf(format, args...), Target: target}
}

func notImplemented(target, format string, args ...any) *Error {
	return &Error{Status: 501, Code: "NotImplemented", Message: fmt.Sprintf(format, args...), Target: target}
}

type tokKind int

const (
	tEOF tokKind = iota
	tLParen
	tRParen
	tComma
	tIdent  // a name: property, function or keyword operator
	tString // 'text'
	tInt
	tFloat
	tTime // 2024-01-02T03:04:05Z
	tDate // 2024-01-02
	tGUID
	tOther // something the grammar has but the Data API does not
)

type token struct {
	kind tokKind
	text string // the source text (the unquoted value for strings)
	pos  int
	val  any
}

type lexer struct {
	src string
	pos int
}

func isIdentStart(r rune) bool { return r == '_' || unicode.IsLetter(r) }
func isIdentPart(r rune) bool  { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

// next reads one token.
func (l *lexer) next() (token, error) {
	for l.pos < len(l.src) && (l.src[l.pos] == ' ' || l.src[l.pos] == '\t' || l.src[l.pos] == '\n' || l.src[l.pos] == '\r') {
		l.pos++
	}
	start := l.pos
	if l.pos >= len(l.src) {
		return token{kind: tEOF, pos: start}, nil
	}
	c := l.src[l.pos]
	switch c {
	case '(':
		l.pos++
		return token{kind: tLParen, text: "(", pos: start}, nil
	case ')':
		l.pos++
		return token{kind: tRParen, text: ")", pos: start}, nil
	case ',':
		l.pos++
		return token{kind: tComma, text: ",", pos: start}, nil
	case '\'':
		return l.str()
	case '@', '$', '/', '[', '{', '*', '+':
		l.pos++
		return token{kind: tOther, text: string(c), pos: start}, nil
	}
	if c == '-' || (c >= '0' && c <= '9') {
		return l.number()
	}
	r, size := utf8.DecodeRuneInString(l.src[l.pos:])
	if !isIdentStart(r) {
		return token{}, badRequest("$filter", "$filter: unexpected %q at position %d", r, start)
	}
	l.pos += size
	for l.pos < len(l.src) {
		r, size := utf8.DecodeRuneInString(l.src[l.pos:])
		if !isIdentPart(r) {
			break
		}
		l.pos += size
	}
	text := l.src[start:l.pos]
	// A GUID starts like a name when its first group begins with a-f.
	if g, ok := l.guidAt(start); ok {
		return g, nil
	}
	// A typed literal: duration'P1D', binary'…', geography'…'.
	if l.pos < len(l.src) && l.src[l.pos] == '\'' {
		if _, err := l.str(); err != nil {
			return token{}, err
		}
		return token{kind: tOther, text: text + "'…'", pos: start}, nil
	}
	// Qualified names (Namespace.Function) and paths are not supported.
	if l.pos < len(l.src) && l.src[l.pos] == '.' {
		return token{kind: tOther, text: text + ".", pos: start}, nil
	}
	return token{kind: tIdent, text: text, pos: start}, nil
}

func (l *lexer) str() (token, error) {
	start := l.pos
	l.pos++ // the opening quote
	var b strings.Builder
	for {
		i := strings.IndexByte(l.src[l.pos:], '\'')
		if i < 0 {
			return token{}, badRequest("$filter", "$filter: the string starting at position %d has no closing quote", start)
		}
		b.WriteString(l.src[l.pos : l.pos+i])
		l.pos += i + 1
		// '' inside a string is one quote.
		if l.pos < len(l.src) && l.src[l.pos] == '\'' {
			b.WriteByte('\'')
			l.pos++
			continue
		}
		s := b.String()
		return token{kind: tString, text: s, pos: start, val: s}, nil
	}
}

// guidAt reads a GUID literal (8-4-4-4-12 hex digits) at start, if there
// is one.
func (l *lexer) guidAt(start int) (token, bool) {
	const n = 36
	if start+n > len(l.src) {
		return token{}, false
	}
	s := l.src[start : start+n]
	for i := range n {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return token{}, false
			}
			continue
		}
		if !strings.ContainsRune("0123456789abcdefABCDEF", rune(c)) {
			return token{}, false
		}
	}
	if start+n < len(l.src) {
		if r, _ := utf8.DecodeRuneInString(l.src[start+n:]); isIdentPart(r) || r == '-' {
			return token{}, false
		}
	}
	l.pos = start + n
	return token{kind: tGUID, text: s, pos: start, val: s}, true
}

// number reads an integer, a decimal or double, a date, a date-time or a
// GUID (which may start with a digit).
func (l *lexer) number() (token, error) {
	start := l.pos
	if g, ok := l.guidAt(start); ok {
		return g, nil
	}
	end := start
	for end < len(l.src) && strings.IndexByte(" \t\r\n(),", l.src[end]) < 0 {
		end++
	}
	text := l.src[start:end]
	l.pos = end
	bad := func(what string) (token, error) {
		return token{}, badRequest("$filter", "$filter: %q at position %d is not a valid %s", text, start, what)
	}
	// Dates: 2024-01-02, date-times: 2024-01-02T03:04:05(.123)Z or ±hh:mm.
	if len(text) >= 10 && text[4] == '-' && text[7] == '-' && text[0] != '-' {
		if len(text) == 10 {
			d, err := time.Parse("2006-01-02", text)
			if err != nil {
				return bad("date")
			}
			return token{kind: tDate, text: text, pos: start, val: d.UTC()}, nil
		}
		t, err := time.Parse(time.RFC3339Nano, text)
		if err != nil {
			// OData allows seconds to be left out.
			if t, err = time.Parse("2006-01-02T15:04Z07:00", text); err != nil {
				return bad("date-time (write 2024-01-02T03:04:05Z)")
			}
		}
		return token{kind: tTime, text: text, pos: start, val: t.UTC()}, nil
	}
	if text == "-" {
		// A minus before something other than a number: arithmetic.
		return token{kind: tOther, text: "-", pos: start}, nil
	}
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		return token{kind: tInt, text: text, pos: start, val: n}, nil
	}
	// Type suffixes (1.5M, 2L) are OData v2; v4 has none.
	if f, err := strconv.ParseFloat(text, 64); err == nil && !strings.ContainsAny(text, "xXpP_") &&
		!strings.HasPrefix(strings.TrimPrefix(text, "-"), "inf") && !strings.Contains(strings.ToLower(text), "nan") &&
		!strings.Contains(strings.ToLower(text), "inf") {
		return token{kind: tFloat, text: text, pos: start, val: f}, nil
	}
	return bad("number")
}

// Property is what the filter compiler needs of a property: its type.
type Property struct {
	Name string
	Type store.DataType
}

type parser struct {
	lx    lexer
	tok   token
	props map[string]store.DataType
	depth int
}

// ParseFilter parses a $filter value against the properties of an entity
// set (name to type).
func ParseFilter(src string, props map[string]store.DataType) (store.DataExpr, error) {
	if len(src) > maxFilterLen {
		return nil, badRequest("$filter", "$filter is %d bytes long; at most %d are accepted", len(src), maxFilterLen)
	}
	if strings.TrimSpace(src) == "" {
		return nil, badRequest("$filter", "$filter is empty")
	}
	p := &parser{lx: lexer{src: src}, props: props}
	if err := p.advance(); err != nil {
		return nil, err
	}
	e, err := p.expr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.unexpected("the end of the filter")
	}
	b, ok := e.(boolean)
	if !ok {
		return nil, badRequest("$filter", "$filter must be a condition, not %s", describe(e))
	}
	return b.expr, nil
}

func (p *parser) advance() error {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) unexpected(want string) error {
	if p.tok.kind == tOther {
		return notImplemented("$filter", "$filter: %q at position %d is not supported by this service", p.tok.text, p.tok.pos)
	}
	if p.tok.kind == tEOF {
		return badRequest("$filter", "$filter ends where %s was expected", want)
	}
	return badRequest("$filter", "$filter: expected %s at position %d, found %q", want, p.tok.pos, p.tok.text)
}

// The parser's intermediate values: a boolean condition, a property or a
// literal.
type (
	boolean  struct{ expr store.DataExpr }
	propRef  struct{ name string }
	literal  struct{ tok token }
	operandT interface{}
)

func describe(o operandT) string {
	switch x := o.(type) {
	case propRef:
		return "the property " + x.name
	case literal:
		return "the value " + x.tok.text
	}
	return "a condition"
}

func (p *parser) keyword(word string) bool { return p.tok.kind == tIdent && p.tok.text == word }

func (p *parser) expr() (operandT, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, badRequest("$filter", "$filter nests deeper than %d levels", maxDepth)
	}
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("or") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		lb, rb, err := bothConditions("or", l, r)
		if err != nil {
			return nil, err
		}
		l = boolean{store.DataOr{L: lb, R: rb}}
	}
	return l, nil
}

func (p *parser) and() (operandT, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		lb, rb, err := bothConditions("and", l, r)
		if err != nil {
			return nil, err
		}
		l = boolean{store.DataAnd{L: lb, R: rb}}
	}
	return l, nil
}

func (p *parser) condition(o operandT) (store.DataExpr, error) {
	switch x := o.(type) {
	case boolean:
		return x.expr, nil
	case propRef:
		if p.props[x.name] == store.DataBool {
			return store.DataCompare{Field: x.name, Op: store.OpEq, Value: true}, nil
		}
	}
	return nil, badRequest("$filter", "$filter: %s is not a condition", describe(o))
}

func bothConditions(op string, l, r operandT) (store.DataExpr, store.DataExpr, error) {
	lb, lok := l.(boolean)
	rb, rok := r.(boolean)
	if !lok || !rok {
		bad := l
		if lok {
			bad = r
		}
		return nil, nil, badRequest("$filter", "$filter: %q joins conditions, and %s is not one", op, describe(bad))
	}
	return lb.expr, rb.expr, nil
}

func (p *parser) unary() (operandT, error) {
	if p.keyword("not") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxDepth {
			return nil, badRequest("$filter", "$filter nests deeper than %d levels", maxDepth)
		}
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		c, err := p.condition(x)
		if err != nil {
			return nil, err
		}
		return boolean{store.DataNot{X: c}}, nil
	}
	return p.compare()
}

func isComparison(op string) bool {
	switch op {
	case store.OpEq, store.OpNe, store.OpGt, store.OpGe, store.OpLt, store.OpLe:
		return true
	}
	return false
}

// flipped is the operator with its sides swapped: 5 lt x is x gt 5.
func flipped(op string) string {
	switch op {
	case store.OpGt:
		return store.OpLt
	case store.OpGe:
		return store.OpLe
	case store.OpLt:
		return store.OpGt
	case store.OpLe:
		return store.OpGe
	}
	return op
}

func (p *parser) compare() (operandT, error) {
	l, err := p.operand()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tIdent {
		// A bare boolean property is a condition of its own.
		if pr, ok := l.(propRef); ok && p.props[pr.name] == store.DataBool {
			return boolean{store.DataCompare{Field: pr.name, Op: store.OpEq, Value: true}}, nil
		}
		return l, nil
	}
	op := p.tok.text
	switch {
	case isComparison(op):
	case op == "has" || op == "in" || op == "add" || op == "sub" || op == "mul" || op == "div" || op == "divby" || op == "mod":
		return nil, notImplemented("$filter", "$filter: the operator %q is not supported by this service", op)
	default:
		if pr, ok := l.(propRef); ok && p.props[pr.name] == store.DataBool {
			return boolean{store.DataCompare{Field: pr.name, Op: store.OpEq, Value: true}}, nil
		}
		return l, nil
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	r, err := p.operand()
	if err != nil {
		return nil, err
	}
	prop, lit, swapped := sides(l, r)
	switch {
	case prop == nil && lit == nil:
		if _, lp := l.(propRef); lp {
			return nil, notImplemented("$filter", "$filter: comparing two properties is not supported by this service")
		}
		return nil, badRequest("$filter", "$filter: %q compares %s with %s; one side must be a property and the other a value", op, describe(l), describe(r))
	case prop == nil:
		return nil, notImplemented("$filter", "$filter: comparing two values is not supported by this service")
	}
	if swapped {
		op = flipped(op)
	}
	v, err := p.typed(*prop, *lit, op)
	if err != nil {
		return nil, err
	}
	return boolean{store.DataCompare{Field: prop.name, Op: op, Value: v}}, nil
}

// sides sorts a comparison's operands into property and literal.
func sides(l, r operandT) (*propRef, *literal, bool) {
	lp, lpok := l.(propRef)
	rp, rpok := r.(propRef)
	ll, llok := l.(literal)
	rl, rlok := r.(literal)
	switch {
	case lpok && rlok:
		return &lp, &rl, false
	case llok && rpok:
		return &rp, &ll, true
	case lpok && rpok:
		return nil, nil, false
	case llok && rlok:
		return nil, &ll, false
	}
	return nil, nil, false
}

// typed checks a literal against the property's type and returns the
// value the store compares with.
func (p *parser) typed(prop propRef, lit literal, op string) (any, error) {
	t := p.props[prop.name]
	tok := lit.tok
	if tok.kind == tIdent && tok.text == "null" {
		if op != store.OpEq && op != store.OpNe {
			return nil, badRequest("$filter", "$filter: %s %s null: only eq and ne compare with null", prop.name, op)
		}
		return nil, nil
	}
	mismatch := func(want string) error {
		return &Error{Status: 400, Code: "BadRequest", Target: prop.name,
			Message: fmt.Sprintf("$filter: %s is %s, so %s cannot be compared with it", prop.name, want, tok.text)}
	}
	switch t {
	case store.DataString:
		if tok.kind == tString || tok.kind == tGUID {
			return tok.val, nil
		}
		return nil, mismatch("text ('…' in quotes)")
	case store.DataInt:
		if tok.kind == tInt || tok.kind == tFloat {
			return tok.val, nil
		}
		return nil, mismatch("a whole number")
	case store.DataFloat:
		if tok.kind == tInt || tok.kind == tFloat {
			return tok.val, nil
		}
		return nil, mismatch("a number")
	case store.DataBool:
		if tok.kind == tIdent && (tok.text == "true" || tok.text == "false") {
			return tok.text == "true", nil
		}
		return nil, mismatch("true or false")
	case store.DataTime:
		// A date stands for its midnight, UTC.
		if tok.kind == tTime || tok.kind == tDate {
			return tok.val, nil
		}
		return nil, mismatch("a date-time (2024-01-02T03:04:05Z)")
	}
	return nil, mismatch("of another type")
}

// unsupportedFunc reports whether name is one of the standard's functions
// the Data API does not implement: asked for, they are 501, not 400.
func unsupportedFunc(name string) bool {
	return slices.Contains([]string{"concat", "indexof", "length", "substring", "tolower", "toupper",
		"trim", "matchesPattern", "year", "month", "day", "hour", "minute", "second", "fractionalseconds",
		"totalseconds", "date", "time", "totaloffsetminutes", "now", "mindatetime", "maxdatetime", "round",
		"floor", "ceiling", "cast", "isof", "hassubset", "hassubsequence", "case", "any", "all"}, name)
}

func (p *parser) operand() (operandT, error) {
	t := p.tok
	switch t.kind {
	case tLParen:
		if err := p.advance(); err != nil {
			return nil, err
		}
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tRParen {
			return nil, p.unexpected(`")"`)
		}
		return e, p.advance()
	case tString, tInt, tFloat, tTime, tDate, tGUID:
		return literal{t}, p.advance()
	case tIdent:
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind == tLParen {
			return p.call(t)
		}
		switch t.text {
		case "true", "false", "null":
			return literal{t}, nil
		case "INF", "NaN":
			return nil, notImplemented("$filter", "$filter: %s is not supported by this service", t.text)
		}
		if _, ok := p.props[t.text]; !ok {
			return nil, &Error{Status: 400, Code: "BadRequest", Target: t.text,
				Message: fmt.Sprintf("$filter: %q is not a property of this entity set", t.text)}
		}
		if p.tok.kind == tOther && p.tok.text == "/" {
			return nil, notImplemented("$filter", "$filter: property paths (%s/…) are not supported by this service", t.text)
		}
		return propRef{t.text}, nil
	}
	return nil, p.unexpected("a property, a value or \"(\"")
}

func (p *parser) call(name token) (operandT, error) {
	fn := name.text
	switch fn {
	case store.MatchContains, store.MatchStartsWith, store.MatchEndsWith:
	default:
		if unsupportedFunc(fn) {
			return nil, notImplemented("$filter", "$filter: the function %s() is not supported by this service", fn)
		}
		return nil, badRequest("$filter", "$filter: %s() is not an OData function", fn)
	}
	if err := p.advance(); err != nil { // "("
		return nil, err
	}
	first, err := p.operand()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tComma {
		return nil, p.unexpected(`","`)
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	second, err := p.operand()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tRParen {
		return nil, p.unexpected(`")"`)
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	prop, pok := first.(propRef)
	lit, lok := second.(literal)
	if !pok || !lok {
		return nil, notImplemented("$filter", "$filter: %s() is supported with a property and a text value, as in %s(Title,'abc')", fn, fn)
	}
	if p.props[prop.name] != store.DataString {
		return nil, &Error{Status: 400, Code: "BadRequest", Target: prop.name,
			Message: fmt.Sprintf("$filter: %s() needs a text property; %s is not text", fn, prop.name)}
	}
	if lit.tok.kind != tString {
		return nil, badRequest("$filter", "$filter: %s() needs a text value in quotes, not %s", fn, lit.tok.text)
	}
	return boolean{store.DataMatch{Func: fn, Field: prop.name, Value: lit.tok.val.(string)}}, nil
}
