package flowdiagram

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/flow"
)

func expense(t *testing.T) *flow.Definition {
	t.Helper()
	src, err := os.ReadFile("../../examples/expense-approval.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def, err := flow.Parse(src, "expense-approval.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return def
}

func edge(l *Layout, from, to string) (Edge, bool) {
	for _, e := range l.Edges {
		if e.From == from && e.To == to {
			return e, true
		}
	}
	return Edge{}, false
}

// Every way on of the definition is an arrow with what leads there as
// its label: switch cases (their condition) and default, task actions,
// next and the step that follows in the list.
func TestEdgesAndLabels(t *testing.T) {
	l := New(expense(t), Marks{})
	for _, c := range []struct{ from, to, label string }{
		{"check", "invalid", "input.amount <= 0"},
		{"check", "approve", "input.amount > 500"},
		{"check", "auto-approved", "otherwise"},
		{"approve", "approved", "Approve"},
		{"approve", "rejected", "Reject"},
		{"auto-approved", "connect", ""},
		{"approved", "connect", ""},
		{"connect", "connected", ""},
		{"filed", "done", "steps.file.output.status == 201"},
	} {
		e, ok := edge(l, c.from, c.to)
		if !ok {
			t.Errorf("no arrow %s → %s", c.from, c.to)
			continue
		}
		if e.Label != c.label {
			t.Errorf("arrow %s → %s labelled %q, want %q", c.from, c.to, e.Label, c.label)
		}
		if len(e.Points) < 2 {
			t.Errorf("arrow %s → %s has no line: %v", c.from, c.to, e.Points)
		}
	}
	// return and fail end the instance: no arrow leaves them, and no
	// step falls off the list, so there is no end box.
	for _, e := range l.Edges {
		if e.From == "done" || e.From == "invalid" || e.To == End {
			t.Errorf("unexpected arrow %s → %s", e.From, e.To)
		}
	}
	if len(l.Nodes) != len(expense(t).Steps) {
		t.Errorf("%d boxes, want one per step (%d)", len(l.Nodes), len(expense(t).Steps))
	}
	// Rows follow the way through the flow: a step is below every step
	// that leads to it (loops aside), and no two boxes overlap.
	rowOf := map[string]int{}
	for _, nd := range l.Nodes {
		rowOf[nd.ID] = nd.Row
	}
	for _, e := range l.Edges {
		if !e.Back && rowOf[e.To] <= rowOf[e.From] {
			t.Errorf("%s (row %d) is not below %s (row %d)", e.To, rowOf[e.To], e.From, rowOf[e.From])
		}
	}
	for i, a := range l.Nodes {
		for _, b := range l.Nodes[i+1:] {
			if a.X < b.X+boxW && b.X < a.X+boxW && a.Y < b.Y+boxH && b.Y < a.Y+boxH {
				t.Errorf("%s and %s overlap", a.ID, b.ID)
			}
		}
		if a.X < 0 || a.Y < 0 || a.X+boxW > l.Width || a.Y+boxH > l.Height {
			t.Errorf("%s lies outside the picture", a.ID)
		}
	}
}

// An instance's path marks its steps and arrows; the current and the
// failed step are marked as such, in the SVG too.
func TestMarks(t *testing.T) {
	l := New(expense(t), Marks{Path: []string{"check", "approve", "rejected"}, Current: []string{"approve"}, Failed: "rejected"})
	marked := map[string]Node{}
	for _, nd := range l.Nodes {
		marked[nd.ID] = nd
	}
	if !marked["check"].Taken || !marked["approve"].Taken || marked["auto-approved"].Taken {
		t.Errorf("taken steps wrong: %+v", marked)
	}
	if !marked["approve"].Current || !marked["rejected"].Failed || marked["check"].Current {
		t.Errorf("current/failed marks wrong: %+v", marked)
	}
	if e, _ := edge(l, "check", "approve"); !e.Taken {
		t.Error("check → approve is not marked taken")
	}
	if e, _ := edge(l, "check", "invalid"); e.Taken {
		t.Error("check → invalid is marked taken")
	}
	svg := string(l.SVG("d1"))
	for _, want := range []string{
		`<g class="node taken" data-step="check">`,
		`<g class="node taken current" data-step="approve">`,
		`<g class="node terminal taken failed" data-step="rejected">`,
		`<g class="edge taken" data-from="check" data-to="approve">`,
		`<g class="edge" data-from="check" data-to="invalid">`,
		`marker-end="url(#d1-arrow-taken)"`,
		`role="img" aria-labelledby="d1-title d1-desc"`,
		`<text class="edge-label"`,
		`>Approve</text>`,
		`input.amount &gt; 500`,
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %s", want)
		}
	}
	if regexp.MustCompile(`\sstyle=`).MatchString(svg) {
		t.Error("SVG has an inline style attribute, which the pages' CSP refuses")
	}
	if d := l.Describe(); !strings.Contains(d, "approve is current") || !strings.Contains(d, "rejected failed") {
		t.Errorf("description lacks the marks: %s", d)
	}
}

// A loop is drawn as an arrow back up beside the boxes, and a step
// falling off the end of the list leads to an end box marked when the
// instance completed that way.
func TestLoopAndEnd(t *testing.T) {
	def, err := flow.Parse([]byte(`name: loop
steps:
  - id: ask
    type: task
    title: Ask
    assignees: ["user:bob"]
    actions: [Again, Stop]
    next: {Again: ask-more, Stop: after}
  - id: ask-more
    type: set
    vars: {n: 1}
    next: ask
  - id: after
    type: set
    vars: {n: 2}
`), "loop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l := New(def, Marks{Path: []string{"ask", "ask-more", "ask", "after"}, Completed: true})
	back, ok := edge(l, "ask-more", "ask")
	if !ok || !back.Back || !back.Taken {
		t.Errorf("loop arrow: %+v %v", back, ok)
	}
	if len(back.Points) != 6 || back.Points[2][0] >= l.Nodes[0].X {
		t.Errorf("loop arrow not in a lane left of the boxes: %v", back.Points)
	}
	if stop, _ := edge(l, "ask", "after"); stop.Label != "Stop" || !stop.Taken {
		t.Errorf("arrow of the action Stop: %+v", stop)
	}
	end, ok := edge(l, "after", End)
	if !ok || !end.Taken {
		t.Errorf("arrow to the end: %+v %v", end, ok)
	}
	if last := l.Nodes[len(l.Nodes)-1]; last.ID != End || !last.Taken {
		t.Errorf("end box: %+v", last)
	}
	if os.Getenv("FLOWDIAGRAM_WRITE") != "" {
		_ = os.WriteFile("/tmp/loop.svg", []byte(l.SVG("x")), 0o644)
		_ = os.WriteFile("/tmp/expense.svg", []byte(New(expense(t), Marks{Path: []string{"check", "approve"}, Current: []string{"approve"}}).SVG("x")), 0o644)
	}
}

// Below the first row a step sits under the step that leads to it, not
// in list order, so that the arrows of two branches do not cross.
func TestBranchesDoNotCross(t *testing.T) {
	def, err := flow.Parse([]byte(`name: branches
steps:
  - id: s
    type: switch
    cases:
      - when: "${{ true }}"
        next: p
    default: q
  - id: p
    type: set
    vars: {a: 1}
    next: pp
  - id: q
    type: set
    vars: {a: 2}
    next: qq
  - id: qq
    type: return
  - id: pp
    type: return
`), "branches.yaml")
	if err != nil {
		t.Fatal(err)
	}
	x := map[string]int{}
	for _, nd := range New(def, Marks{}).Nodes {
		x[nd.ID] = nd.X
	}
	if !(x["p"] < x["q"]) || !(x["pp"] < x["qq"]) {
		t.Fatalf("p, q, pp, qq at x %d, %d, %d, %d: want pp under p, left of qq under q", x["p"], x["q"], x["pp"], x["qq"])
	}
}

const nestedFlow = `name: orders
title: Orders
input:
  lines: {type: array}
steps:
  - id: intake
    type: set
    vars: {n: 1}
  - id: reviews
    type: parallel
    join: any
    branches:
      legal:
        - {id: legal-ok, type: task, title: "Legal review", assignees: ["role:legal"], actions: [OK, Reject]}
      finance:
        - {id: finance-ok, type: task, title: "Finance review", assignees: ["role:finance"], actions: [OK, Reject], next: {Reject: finance-no}}
        - {id: finance-yes, type: set, vars: {finance: yes}}
        - {id: finance-no, type: set, vars: {finance: no}}
  - id: each-line
    type: foreach
    items: "${{ input.lines }}"
    as: line
    concurrency: 4
    steps:
      - {id: price, type: set, vars: {p: "${{ line.sku }}"}}
      - {id: book-line, type: flow, flow: book-line, input: {sku: "${{ line.sku }}"}}
  - id: archive
    type: flow
    flow: archive
  - id: done
    type: return
`

func nested(t *testing.T) *flow.Definition {
	t.Helper()
	def, err := flow.Parse([]byte(nestedFlow), "orders.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return def
}

func nodeOf(l *Layout, id string) (Node, bool) {
	for _, nd := range l.Nodes {
		if nd.ID == id {
			return nd, true
		}
	}
	return Node{}, false
}

// holds reports whether step frame holds step id, at any depth.
func holds(def *flow.Definition, frame, id string) bool {
	for sc := def.Scope(id); sc != ""; sc = def.Scope(sc) {
		sc, _, _ = strings.Cut(sc, "/")
		if sc == frame {
			return true
		}
	}
	return false
}

// within reports whether every point of e lies inside the rectangle.
func within(e Edge, x, y, w, h int) bool {
	for _, p := range e.Points {
		if p[0] < x || p[0] > x+w || p[1] < y || p[1] > y+h {
			return false
		}
	}
	return true
}

// A parallel step is a frame with its branches side by side, a foreach
// a frame around its body, and the arrows of a branch or a body stay in
// its frame; the step after a frame follows the frame.
func TestNestedFrames(t *testing.T) {
	l := New(nested(t), Marks{})
	if os.Getenv("FLOWDIAGRAM_WRITE") != "" {
		_ = os.WriteFile("/tmp/nested.svg", []byte(l.SVG("x")), 0o644)
	}
	par, ok := nodeOf(l, "reviews")
	if !ok || !par.Frame || par.Type != "parallel" || len(par.Columns) != 2 {
		t.Fatalf("reviews: %+v", par)
	}
	legal, finance := par.Columns[0], par.Columns[1]
	if legal.Name != "legal" || finance.Name != "finance" {
		t.Errorf("columns %q, %q, want legal, finance", legal.Name, finance.Name)
	}
	// Side by side: one starting height, the second right of the first,
	// both inside the frame.
	if legal.Y != finance.Y || legal.X+legal.W > finance.X {
		t.Errorf("columns not side by side: legal %+v, finance %+v", legal, finance)
	}
	for _, c := range par.Columns {
		if c.X < par.X || c.Y < par.Y || c.X+c.W > par.X+par.W || c.Y+c.H > par.Y+par.H {
			t.Errorf("column %s %+v lies outside its frame %+v", c.Name, c, par)
		}
	}
	// Each branch's steps are in its column; its first steps start at
	// the same height.
	cols := map[string]Column{"legal-ok": legal, "finance-ok": finance, "finance-yes": finance, "finance-no": finance}
	for id, c := range cols {
		nd, ok := nodeOf(l, id)
		if !ok {
			t.Errorf("no box %s", id)
			continue
		}
		if nd.Frame || nd.Scope != "reviews/"+c.Name || nd.X < c.X || nd.X+nd.W > c.X+c.W || nd.Y < c.Y || nd.Y+nd.H > c.Y+c.H {
			t.Errorf("%s %+v is not in column %s %+v", id, nd, c.Name, c)
		}
	}
	lo, _ := nodeOf(l, "legal-ok")
	fo, _ := nodeOf(l, "finance-ok")
	if lo.Y != fo.Y || lo.X >= fo.X {
		t.Errorf("first steps of the branches at %d,%d and %d,%d: want one height, legal left", lo.X, lo.Y, fo.X, fo.Y)
	}
	// Arrows inside a branch stay in its column, and its end is its
	// column's bottom.
	for _, c := range []struct {
		from, to string
		col      Column
	}{{"finance-ok", "finance-yes", finance}, {"finance-ok", "finance-no", finance}, {"finance-yes", "finance-no", finance},
		{"finance-no", End, finance}, {"legal-ok", End, legal}} {
		e, ok := edge(l, c.from, c.to)
		if !ok {
			t.Errorf("no arrow %s → %s", c.from, c.to)
			continue
		}
		if !within(e, c.col.X, c.col.Y, c.col.W, c.col.H) {
			t.Errorf("arrow %s → %s %v leaves column %s %+v", c.from, c.to, e.Points, c.col.Name, c.col)
		}
		if c.to == End && e.Points[len(e.Points)-1][1] != c.col.Y+c.col.H {
			t.Errorf("arrow %s → end stops at %v, not at the column's bottom %d", c.from, e.Points, c.col.Y+c.col.H)
		}
	}
	if _, ok := edge(l, "legal-ok", "finance-ok"); ok {
		t.Error("an arrow crosses from one branch to another")
	}
	// The flow goes into the frame and on from its bottom.
	in, _ := edge(l, "intake", "reviews")
	out, _ := edge(l, "reviews", "each-line")
	if p := in.Points[len(in.Points)-1]; p[1] != par.Y {
		t.Errorf("intake → reviews ends at %v, not at the frame's top %d", p, par.Y)
	}
	if p := out.Points[0]; p[1] != par.Y+par.H {
		t.Errorf("reviews → each-line starts at %v, not at the frame's bottom %d", p, par.Y+par.H)
	}
	each, ok := nodeOf(l, "each-line")
	if !ok || !each.Frame || each.Y <= par.Y+par.H {
		t.Fatalf("each-line %+v not a frame below reviews %+v", each, par)
	}
	if want := []string{"foreach line in input.lines", "concurrency: 4"}; !slices.Equal(each.Heading, want) {
		t.Errorf("foreach heading %q, want %q", each.Heading, want)
	}
	for _, pair := range [][2]string{{"price", "book-line"}, {"book-line", End}} {
		e, ok := edge(l, pair[0], pair[1])
		if !ok || e.Scope != "each-line" || !within(e, each.X, each.Y, each.W, each.H) {
			t.Errorf("body arrow %s → %s: %+v %v, want inside %+v", pair[0], pair[1], e, ok, each)
		}
	}
	// No box overlaps another, and a box and a frame overlap only when
	// the frame holds it.
	for i, a := range l.Nodes {
		for _, b := range l.Nodes[i+1:] {
			if !(a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H) {
				continue
			}
			if !holds(nested(t), a.ID, b.ID) {
				t.Errorf("%s and %s overlap", a.ID, b.ID)
			}
		}
	}
	svg := string(l.SVG("d2"))
	for _, want := range []string{
		`<g class="frame parallel" data-step="reviews"`,
		`<g class="frame foreach" data-step="each-line"`,
		`>parallel · join: any</text>`,
		`<g class="branch" data-branch="legal">`,
		`>branch finance</text>`,
		`<a href="/flows/archive" aria-label="Step archive: child flow archive"><g class="node link" data-step="archive">`,
		`<a href="/flows/book-line"`,
		`role="group" aria-labelledby="d2-title d2-desc"`,
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %s", want)
		}
	}
	if regexp.MustCompile(`\sstyle=|<script`).MatchString(svg) {
		t.Error("SVG has an inline style or a script, which the pages' CSP refuses")
	}
	d := l.Describe()
	for _, want := range []string{"reviews runs the branches legal, finance at the same time (join: any)",
		"each-line runs its body line in input.lines (concurrency: 4)", "archive starts flow archive", "legal-ok to the end of branch legal of reviews"} {
		if !strings.Contains(d, want) {
			t.Errorf("description lacks %q: %s", want, d)
		}
	}
}

// Marks reach into branches: several current steps at once, steps
// taken in a branch with their arrows (histories of branches running at
// once interleave), and a flow step whose child is known links to it.
func TestNestedMarks(t *testing.T) {
	def := nested(t)
	l := New(def, Marks{
		Path:     []string{"intake", "reviews", "finance-ok", "legal-ok", "finance-no"},
		Current:  []string{"reviews", "legal-ok"},
		Children: map[string]string{"archive": "0192-child"},
	})
	// The same, with each branch's history apart (the instances that ran
	// them): the same marks.
	split := New(def, Marks{
		Path:     []string{"intake", "reviews"},
		Branches: [][]string{{"finance-ok", "finance-no"}, {"legal-ok"}},
		Current:  []string{"reviews", "legal-ok"},
		Children: map[string]string{"archive": "0192-child"},
	})
	if !reflect.DeepEqual(l, split) {
		t.Errorf("marks from the branches' own histories differ:\n%+v\n%+v", l, split)
	}
	for id, want := range map[string][2]bool{ // taken, current
		"intake": {true, false}, "reviews": {true, true}, "legal-ok": {true, true},
		"finance-ok": {true, false}, "finance-no": {true, false}, "finance-yes": {false, false}, "each-line": {false, false},
	} {
		nd, _ := nodeOf(l, id)
		if nd.Taken != want[0] || nd.Current != want[1] {
			t.Errorf("%s taken %v current %v, want %v", id, nd.Taken, nd.Current, want)
		}
	}
	for pair, want := range map[[2]string]bool{
		{"intake", "reviews"}: true, {"finance-ok", "finance-no"}: true, {"finance-no", End}: true,
		{"legal-ok", End}: false, {"finance-ok", "finance-yes"}: false, {"reviews", "each-line"}: false,
	} {
		if e, ok := edge(l, pair[0], pair[1]); !ok || e.Taken != want {
			t.Errorf("arrow %s → %s taken %v (found %v), want %v", pair[0], pair[1], e.Taken, ok, want)
		}
	}
	svg := string(l.SVG("d3"))
	if os.Getenv("FLOWDIAGRAM_WRITE") != "" {
		_ = os.WriteFile("/tmp/nested-marks.svg", []byte(svg), 0o644)
	}
	for _, want := range []string{
		`<g class="frame parallel taken current" data-step="reviews"`,
		`<g class="node taken current" data-step="legal-ok"`,
		`<a href="/instances/0192-child" aria-label="Step archive: child instance of archive">`,
		`<a href="/flows/book-line"`,
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %s", want)
		}
	}
	if d := l.Describe(); !strings.Contains(d, "reviews is current, legal-ok is current") {
		t.Errorf("description lacks the current steps: %s", d)
	}
}

// Frames nest: a parallel step in a foreach body, a loop and a skip
// inside a branch. Every arrow stays in the frame (or column) of its
// list, and boxes overlap only the frames holding them.
func TestFramesInFrames(t *testing.T) {
	def, err := flow.Parse([]byte(`name: deep
steps:
  - id: each
    type: foreach
    items: "${{ [1, 2] }}"
    steps:
      - id: both
        type: parallel
        branches:
          ask:
            - {id: q, type: task, title: Q, assignees: ["user:bob"], actions: [Again, Skip], next: {Again: q2, Skip: q4}}
            - {id: q2, type: set, vars: {a: 1}}
            - {id: q3, type: switch, cases: [{when: "${{ true }}", next: q}], default: q4}
            - {id: q4, type: set, vars: {a: 1}}
          tell:
            - {id: t1, type: set, vars: {b: 1}}
      - {id: after, type: set, vars: {c: 1}}
  - {id: last, type: return}
`), "deep.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l := New(def, Marks{Path: []string{"each", "both"}, Branches: [][]string{{"q", "q2", "q3", "q"}, {"t1"}}, Current: []string{"each", "both", "q"}})
	if os.Getenv("FLOWDIAGRAM_WRITE") != "" {
		_ = os.WriteFile("/tmp/deep.svg", []byte(l.SVG("x")), 0o644)
	}
	// The rectangle of each list: a column for a branch, the frame for a
	// body, the picture for the flow's own.
	area := map[string][4]int{"": {0, 0, l.Width, l.Height}}
	for _, nd := range l.Nodes {
		if nd.Frame && nd.Type == "foreach" {
			area[nd.ID] = [4]int{nd.X, nd.Y, nd.W, nd.H}
		}
		for _, c := range nd.Columns {
			area[nd.ID+"/"+c.Name] = [4]int{c.X, c.Y, c.W, c.H}
		}
	}
	for _, e := range l.Edges {
		a, ok := area[e.Scope]
		if !ok || !within(e, a[0], a[1], a[2], a[3]) {
			t.Errorf("arrow %s → %s (%s) %v leaves its list's area %v", e.From, e.To, e.Scope, e.Points, a)
		}
	}
	for i, a := range l.Nodes {
		for _, b := range l.Nodes[i+1:] {
			if a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H && !holds(def, a.ID, b.ID) {
				t.Errorf("%s and %s overlap", a.ID, b.ID)
			}
		}
	}
	if back, ok := edge(l, "q3", "q"); !ok || !back.Back || !back.Taken {
		t.Errorf("loop in the branch: %+v %v", back, ok)
	}
	if skip, ok := edge(l, "q", "q4"); !ok || !skip.Skip || skip.Taken {
		t.Errorf("skip in the branch: %+v %v", skip, ok)
	}
	if nd, _ := nodeOf(l, "both"); !nd.Frame || nd.Scope != "each" || !nd.Current {
		t.Errorf("both: %+v", nd)
	}
}
