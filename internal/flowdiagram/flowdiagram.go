// Package flowdiagram draws a flow definition as an SVG picture: one box
// per step, an arrow per way on (next, switch cases and default, task
// actions) labelled with what leads there, and, for an instance, marks on
// the steps taken, the current steps and a failed step.
//
// The layout is our own small layered one (docs/design.md says
// why): steps are put in rows by the longest way from the start, the
// steps of a row side by side under the steps leading to them, arrows between neighbouring
// rows drawn straight, and arrows that skip rows or go back (loops) drawn
// in lanes beside the boxes so they never cross one.
//
// Steps holding lists of their own are frames laid out by the same rules,
// inside out: a parallel step is a frame with one column per branch, side
// by side, and a foreach step a frame around its body. A frame takes the
// place of a box in its own list, so the arrows of a list never enter
// another list's frame, and the step after a frame hangs below the frame.
// A flow step's box links to the flow it starts (or the child instance,
// when the page knows it).
package flowdiagram

import (
	"fmt"
	"html/template"
	"net/url"
	"slices"
	"strings"

	"github.com/flowgate/flowgate/internal/flow"
)

// Geometry of the picture, in SVG user units (CSS pixels at scale 1).
const (
	boxW     = 168
	boxH     = 44
	colGap   = 40
	rowGap   = 64
	margin   = 16
	laneGap  = 18
	maxLabel = 22 // characters of a step id or edge label before "…"

	framePad   = 12 // inside a frame, around what it holds
	lineH      = 16 // a line of a frame's heading
	branchGap  = 24 // between the columns of a parallel frame
	branchTop  = 24 // a column's name above its steps
	charW      = 7  // the width of a character, roughly, to cut texts to a frame
	labelCharW = 6  // the same for an arrow's label or a heading (11px)
	maxHeading = 48 // characters of a heading line a frame widens for
)

// End is the id of the end node every step without a way on leads to. In
// a branch or a foreach body the end is that list's end (the bottom of
// its column or frame), not a box.
const End = "(end)"

// Marks are what an instance adds to its flow's picture.
type Marks struct {
	// Path is the steps in the order they ran (the history), nested
	// steps included; each is marked taken, and each step marks the
	// arrow from the step before it in the same list (the steps of
	// branches running at the same time interleave in a history).
	Path []string
	// Branches are the paths of the instances that ran the branches of
	// parallel steps and the items of foreach steps (each its own
	// history), marked as Path is.
	Branches [][]string
	// Current is the steps the instance is at (a task, a wait, the
	// steps of branches running at once); Failed the step it failed at,
	// "" when none.
	Current []string
	Failed  string
	// Completed marks the way from the last step of the flow's own
	// list to the end.
	Completed bool
	// Children maps a flow step to the child instance it started, which
	// its box then links to instead of the child flow.
	Children map[string]string
}

// Node is one box, or one frame holding nested lists.
type Node struct {
	ID, Type string
	// Scope is the list the step is in (flow.Definition.Scope): "" for
	// the flow's own steps.
	Scope string
	// Row and Col place the node in its own list.
	Row, Col int
	X, Y     int
	// W and H are the box's or the frame's size.
	W, H int
	// Frame says the node is drawn as a frame (parallel and foreach);
	// Heading is its lines below the id (type and join, or the items).
	Frame   bool
	Heading []string
	// Columns are a parallel frame's branches, left to right.
	Columns []Column
	// Href is where a flow step's box links: the child instance, or
	// the child flow.
	Href    string
	Taken   bool
	Current bool
	Failed  bool
}

// Column is one branch of a parallel frame.
type Column struct {
	Name       string
	X, Y, W, H int
	scope      string
}

// Edge is one arrow: From and To are step ids (To may be End).
type Edge struct {
	From, To, Label string
	// Scope is the list the arrow is in, as Node.Scope.
	Scope string
	Taken bool
	// Back is an arrow to an earlier row (a loop), Skip one past more
	// than one row; both are drawn in a lane beside the boxes.
	Back, Skip bool
	// Points is the arrow's polyline.
	Points [][2]int
	// LabelX, LabelY place the label.
	LabelX, LabelY int
}

// Layout is a flow laid out, ready to draw.
type Layout struct {
	Title         string
	Nodes         []Node
	Edges         []Edge
	Width, Height int
}

// ways lists the arrows leaving step i of a list, in the order the engine
// considers them.
func ways(list []flow.Step, i int, scope string) []Edge {
	s := list[i]
	following := End
	if i+1 < len(list) {
		following = list[i+1].ID
	}
	or := func(id string) string {
		if id == "" {
			return following
		}
		return id
	}
	switch s.Type {
	case flow.TypeReturn, flow.TypeFail:
		// They end the instance themselves; their box says so.
		return nil
	case flow.TypeSwitch:
		var out []Edge
		for _, c := range s.Switch.Cases {
			out = append(out, Edge{From: s.ID, To: or(c.Next), Scope: scope, Label: strings.TrimSpace(trimExpr(c.When.String()))})
		}
		return append(out, Edge{From: s.ID, To: or(s.Switch.Default), Scope: scope, Label: "otherwise"})
	case flow.TypeTask:
		var out []Edge
		for _, a := range s.Task.Actions {
			out = append(out, Edge{From: s.ID, To: or(s.Task.Next[a]), Scope: scope, Label: a})
		}
		return out
	default:
		return []Edge{{From: s.ID, To: or(s.Next), Scope: scope}}
	}
}

// trimExpr shows a when condition without its ${{ }}.
func trimExpr(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "${{") && strings.HasSuffix(s, "}}") {
		return strings.TrimSpace(s[3 : len(s)-2])
	}
	return s
}

// marks are the instance's marks read once for the whole layout.
type marks struct {
	taken   map[string]bool
	edges   map[[2]string]bool
	current map[string]bool
	failed  string
	// children maps flow steps to their child instances.
	children map[string]string
}

func readMarks(def *flow.Definition, m Marks) marks {
	k := marks{taken: map[string]bool{}, edges: map[[2]string]bool{}, current: map[string]bool{}, failed: m.Failed, children: m.Children}
	for _, id := range m.Current {
		k.current[id] = true
	}
	k.path(def, m.Path, m.Completed)
	for _, p := range m.Branches {
		k.path(def, p, false)
	}
	return k
}

// path marks the steps of one history and the arrows between them.
func (k *marks) path(def *flow.Definition, path []string, completed bool) {
	last := map[string]string{} // list -> the last step of path in it
	for _, id := range path {
		if _, ok := def.Step(id); !ok {
			continue
		}
		k.taken[id] = true
		sc := def.Scope(id)
		if p, ok := last[sc]; ok {
			k.edges[[2]string{p, id}] = true
		}
		last[sc] = id
	}
	for sc, id := range last {
		switch {
		case sc == "":
			if completed {
				k.edges[[2]string{id, End}] = true
				k.taken[End] = true
			}
		case !k.current[id] && id != k.failed:
			// The last step a branch or body ran, done: the way it went
			// on, if it leads off the list, is to the list's end.
			k.edges[[2]string{id, End}] = true
		}
	}
}

// block is a list laid out with its top left corner at 0,0.
type block struct {
	w, h  int
	nodes []Node
	edges []Edge
}

func (b *block) shift(dx, dy int) {
	for i := range b.nodes {
		n := &b.nodes[i]
		n.X, n.Y = n.X+dx, n.Y+dy
		for c := range n.Columns {
			n.Columns[c].X += dx
			n.Columns[c].Y += dy
		}
	}
	for i := range b.edges {
		e := &b.edges[i]
		for p := range e.Points {
			e.Points[p][0] += dx
			e.Points[p][1] += dy
		}
		e.LabelX, e.LabelY = e.LabelX+dx, e.LabelY+dy
	}
}

// New lays def out with the instance's marks (zero Marks for the flow
// alone).
func New(def *flow.Definition, m Marks) *Layout {
	if len(def.Steps) == 0 {
		return &Layout{Title: def.Title, Width: 2 * margin, Height: 2 * margin}
	}
	b := list(def.Steps, "", readMarks(def, m))
	b.shift(margin, margin)
	return &Layout{Title: def.Title, Nodes: b.nodes, Edges: b.edges, Width: b.w + 2*margin, Height: b.h + 2*margin}
}

// list lays out one list of steps: the flow's own (scope "") or a
// branch's or a body's, whose end is the bottom of the list rather than
// an end box.
func list(steps []flow.Step, scope string, k marks) block {
	n := len(steps)
	nested := scope != ""
	index := make(map[string]int, n+1)
	for i, s := range steps {
		index[s.ID] = i
	}
	index[End] = n
	out := make([][]Edge, n)
	for i := range steps {
		// Two ways to one step become one arrow with both labels.
		for _, e := range ways(steps, i, scope) {
			if j := slices.IndexFunc(out[i], func(x Edge) bool { return x.To == e.To }); j >= 0 {
				out[i][j].Label = joinLabel(out[i][j].Label, e.Label)
				continue
			}
			out[i] = append(out[i], e)
		}
	}

	// Frames first: their size is what they hold.
	var inner []block
	pos := make([]Node, n+1)
	for i := range steps {
		nd, held := node(&steps[i], scope, k)
		pos[i] = nd
		inner = append(inner, held)
	}
	// The end: a box for the flow's own list, nothing but the list's
	// bottom edge for a nested one.
	pos[n] = Node{ID: End, Type: "end", Scope: scope, W: boxW, H: boxH, Taken: k.taken[End] && !nested}
	if nested {
		pos[n].H = 0
	}

	// Back edges are those closing a cycle in a depth-first walk from
	// the first step (then from any step not reached, in list order).
	back := map[[2]int]bool{}
	state := make([]int, n+1) // 0 new, 1 on the stack, 2 done
	var walk func(i int)
	walk = func(i int) {
		state[i] = 1
		if i < n {
			for _, e := range out[i] {
				j := index[e.To]
				switch state[j] {
				case 0:
					walk(j)
				case 1:
					back[[2]int{i, j}] = true
				}
			}
		}
		state[i] = 2
	}
	for i := 0; i <= n; i++ {
		if state[i] == 0 {
			walk(i)
		}
	}

	// Rows: the longest way from a source over the forward arrows, in a
	// topological order (the walk's post-order reversed).
	row := make([]int, n+1)
	order := topo(n, out, index, back)
	for _, i := range order {
		if i == n {
			continue
		}
		for _, e := range out[i] {
			j := index[e.To]
			if !back[[2]int{i, j}] && row[j] < row[i]+1 {
				row[j] = row[i] + 1
			}
		}
	}
	// The end, when a step falls off the list, sits alone in the last row.
	last, hasEnd := 0, false
	for i := 0; i < n; i++ {
		last = max(last, row[i])
		hasEnd = hasEnd || slices.ContainsFunc(out[i], func(e Edge) bool { return e.To == End })
	}
	row[n] = last + 1
	nodes := n
	if hasEnd {
		nodes++
	}

	// Rows are as tall as their tallest node (a frame), and the nodes of
	// a row hang from its top.
	rows := make([][]int, row[nodes-1]+1)
	for i := 0; i < nodes; i++ {
		rows[row[i]] = append(rows[row[i]], i)
	}
	rowTop := make([]int, len(rows)+1)
	inner0 := 0 // the widest row
	for r, ids := range rows {
		h, w := 0, -colGap
		for _, i := range ids {
			h = max(h, pos[i].H)
			w += pos[i].W + colGap
		}
		rowTop[r+1] = rowTop[r] + h + rowGap
		inner0 = max(inner0, w)
	}
	rowBottom := func(r int) int { return rowTop[r+1] - rowGap }
	// Lanes: one per arrow drawn beside the boxes, skips on the right,
	// loops on the left.
	type laneKey struct{ from, to int }
	var leftLanes, rightLanes []laneKey
	for i := 0; i < n; i++ {
		for _, e := range out[i] {
			j := index[e.To]
			switch {
			case back[[2]int{i, j}]:
				leftLanes = append(leftLanes, laneKey{i, j})
			case row[j]-row[i] > 1:
				rightLanes = append(rightLanes, laneKey{i, j})
			}
		}
	}
	// A loop back to the first row runs above it: in a branch or a body,
	// room for that below the heading (the flow's own list has its
	// margin).
	if nested {
		top := 0
		for l, lk := range leftLanes {
			if row[lk.to] == 0 {
				top = max(top, 10+(l%6)*5+laneGap/2)
			}
		}
		for r := range rowTop {
			rowTop[r] += top
		}
	}
	leftW := len(leftLanes) * laneGap
	// A right lane's label is written to the right of it: room for it,
	// so that it stays inside the list's frame (or the picture).
	rightW := len(rightLanes) * laneGap
	for l, lk := range rightLanes {
		e := out[lk.from][slices.IndexFunc(out[lk.from], func(e Edge) bool { return index[e.To] == lk.to })]
		if e.Label != "" {
			rightW = max(rightW, l*laneGap+laneGap/2+4+len([]rune(short(e.Label)))*labelCharW)
		}
	}
	b := block{w: leftW + inner0 + rightW, h: rowBottom(len(rows) - 1)}
	// Who leads to each step over a forward arrow, for the order within
	// a row.
	preds := make([][]int, n+1)
	for i := 0; i < n; i++ {
		for _, e := range out[i] {
			if j := index[e.To]; !back[[2]int{i, j}] {
				preds[j] = append(preds[j], i)
			}
		}
	}
	for r, ids := range rows {
		// Below the first row, a step goes under the steps that lead to
		// it (the mean of their centres), which keeps arrows from
		// crossing; ties keep the list order.
		if r > 0 {
			key := make(map[int]float64, len(ids))
			for _, i := range ids {
				sum, c := 0.0, 0
				for _, p := range preds[i] {
					if row[p] < r {
						sum += float64(pos[p].X + pos[p].W/2)
						c++
					}
				}
				if c > 0 {
					key[i] = sum / float64(c)
				}
			}
			slices.SortStableFunc(ids, func(a, b int) int {
				switch {
				case key[a] < key[b]:
					return -1
				case key[a] > key[b]:
					return 1
				}
				return 0
			})
		}
		w := -colGap
		for _, i := range ids {
			w += pos[i].W + colGap
		}
		x := leftW + (inner0-w)/2
		for c, i := range ids {
			pos[i].Row, pos[i].Col, pos[i].X, pos[i].Y = r, c, x, rowTop[r]
			x += pos[i].W + colGap
		}
	}

	// Nodes, each frame followed by what it holds (drawn over it).
	for i := 0; i < n; i++ {
		// A frame's columns were laid out from its corner.
		for c := range pos[i].Columns {
			pos[i].Columns[c].X += pos[i].X
			pos[i].Columns[c].Y += pos[i].Y
		}
		b.nodes = append(b.nodes, pos[i])
		if h := inner[i]; len(h.nodes) > 0 {
			h.shift(pos[i].X, pos[i].Y)
			b.nodes = append(b.nodes, h.nodes...)
			b.edges = append(b.edges, h.edges...)
		}
	}
	if hasEnd && !nested {
		b.nodes = append(b.nodes, pos[n])
	}

	// Arrows.
	for i := 0; i < n; i++ {
		a := pos[i]
		// Straight arrows leave the box's bottom spread over its width,
		// in the order of their targets from left to right, so that they
		// do not cross each other.
		var straight []int
		for c, e := range out[i] {
			j := index[e.To]
			if !back[[2]int{i, j}] && row[j]-row[i] == 1 {
				straight = append(straight, c)
			}
		}
		slices.SortStableFunc(straight, func(x, y int) int { return pos[index[out[i][x].To]].X - pos[index[out[i][y].To]].X })
		// Below a node shorter than its row, an arrow first drops to the
		// row's bottom, clear of a taller frame beside it.
		from := func(x int) [][2]int {
			if a.Y+a.H < rowBottom(a.Row) {
				return [][2]int{{x, a.Y + a.H}, {x, rowBottom(a.Row)}}
			}
			return [][2]int{{x, a.Y + a.H}}
		}
		for c, e := range out[i] {
			j := index[e.To]
			t := pos[j]
			e.Taken = k.edges[[2]string{e.From, e.To}]
			// Arrows in a lane run down (or up) beside the boxes and
			// reach it, and their target, through the gaps between
			// rows, never across a box.
			lane := func(x, lane int) {
				below := rowBottom(a.Row) + 10 + (lane%6)*5
				above := t.Y - 10 - (lane%6)*5
				sx, tx := a.X+a.W/2, t.X+t.W/2
				e.Points = append(from(sx), [][2]int{{sx, below}, {x, below}, {x, above}, {tx, above}, {tx, t.Y}}...)
				e.LabelX, e.LabelY = x+4, below+14
			}
			switch {
			case back[[2]int{i, j}]:
				l := slices.Index(leftLanes, laneKey{i, j})
				e.Back = true
				lane(leftW-(l+1)*laneGap+laneGap/2, l)
			case row[j]-row[i] > 1:
				l := slices.Index(rightLanes, laneKey{i, j})
				e.Skip = true
				lane(leftW+inner0+l*laneGap+laneGap/2, l)
			default:
				s := slices.Index(straight, c)
				sx := a.X + a.W*(s+1)/(len(straight)+1)
				tx := t.X + t.W/2
				e.Points = append(from(sx), [2]int{tx, t.Y})
				// The label sits nearer the target, where arrows of one
				// box have drawn apart.
				e.LabelX, e.LabelY = sx+(tx-sx)*3/5, rowBottom(a.Row)+rowGap*3/5
			}
			b.edges = append(b.edges, e)
		}
	}
	return b
}

// node makes the node of step s, and for a frame lays out what it holds
// (relative to the frame's corner).
func node(s *flow.Step, scope string, k marks) (Node, block) {
	nd := Node{ID: s.ID, Type: string(s.Type), Scope: scope, W: boxW, H: boxH,
		Taken: k.taken[s.ID], Current: k.current[s.ID], Failed: k.failed == s.ID}
	var held block
	switch {
	case s.Type == flow.TypeParallel && s.Parallel != nil:
		nd.Frame = true
		nd.Heading = []string{"parallel · join: " + s.Parallel.Join}
		top := framePad + (1+len(nd.Heading))*lineH + framePad/2
		x, colH := framePad, 0
		var cols []block
		for _, br := range s.Parallel.Branches {
			c := list(br.Steps, s.ID+"/"+br.Name, k)
			cols = append(cols, c)
			colH = max(colH, branchTop+c.h+framePad)
		}
		for i, br := range s.Parallel.Branches {
			c := cols[i]
			w := max(c.w, boxW) + 2*framePad
			col := Column{Name: br.Name, X: x, Y: top, W: w, H: colH, scope: s.ID + "/" + br.Name}
			c.shift(x+(w-c.w)/2, top+branchTop)
			// A branch that runs off its end ends at the bottom of its
			// column, where the branches join.
			for e := range c.edges {
				if p := c.edges[e].Points; c.edges[e].To == End && c.edges[e].Scope == col.scope {
					p[len(p)-1][1] = top + colH
				}
			}
			held.nodes = append(held.nodes, c.nodes...)
			held.edges = append(held.edges, c.edges...)
			nd.Columns = append(nd.Columns, col)
			x += w + branchGap
		}
		nd.W = max(x-branchGap+framePad, headingW(nd))
		nd.H = top + colH + framePad
	case s.Type == flow.TypeForeach && s.Foreach != nil:
		f := s.Foreach
		nd.Frame = true
		nd.Heading = []string{fmt.Sprintf("foreach %s in %s", f.As, trimExpr(f.Items.String())), fmt.Sprintf("concurrency: %d", f.Concurrency)}
		if f.Concurrency == 1 {
			nd.Heading[1] += " (in order)"
		}
		top := framePad + (1+len(nd.Heading))*lineH + framePad/2
		body := list(f.Steps, s.ID, k)
		nd.W = max(body.w+2*framePad, headingW(nd))
		nd.H = top + body.h + 2*framePad
		body.shift((nd.W-body.w)/2, top)
		for e := range body.edges {
			if p := body.edges[e].Points; body.edges[e].To == End && body.edges[e].Scope == s.ID {
				p[len(p)-1][1] = nd.H - framePad
			}
		}
		held = body
	case s.Type == flow.TypeFlow && s.SubFlow != nil:
		nd.Heading = []string{"flow " + s.SubFlow.Flow}
		nd.Href = "/flows/" + url.PathEscape(s.SubFlow.Flow)
		if id := k.children[s.ID]; id != "" {
			nd.Href = "/instances/" + url.PathEscape(id)
		}
	}
	return nd, held
}

func joinLabel(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + ", " + b
}

// topo orders the nodes so that every forward arrow goes from an earlier
// to a later node.
func topo(n int, out [][]Edge, index map[string]int, back map[[2]int]bool) []int {
	indeg := make([]int, n+1)
	for i := 0; i < n; i++ {
		for _, e := range out[i] {
			if j := index[e.To]; !back[[2]int{i, j}] {
				indeg[j]++
			}
		}
	}
	var order, ready []int
	for i := 0; i <= n; i++ {
		if indeg[i] == 0 {
			ready = append(ready, i)
		}
	}
	for len(ready) > 0 {
		i := ready[0]
		ready = ready[1:]
		order = append(order, i)
		if i == n {
			continue
		}
		for _, e := range out[i] {
			if j := index[e.To]; !back[[2]int{i, j}] {
				indeg[j]--
				if indeg[j] == 0 {
					ready = append(ready, j)
				}
			}
		}
	}
	return order
}

// headingW is how wide a frame is at least: its heading (up to
// maxHeading characters), and a box.
func headingW(nd Node) int {
	w := boxW
	for _, h := range append([]string{nd.ID}, nd.Heading...) {
		w = max(w, min(len([]rune(h)), maxHeading)*labelCharW)
	}
	return w + 2*framePad
}

// short cuts a text to what fits a box.
func short(s string) string { return cut(s, maxLabel) }

// fit cuts a text to what fits w units.
func fit(s string, w int) string { return cut(s, max(w/charW, 4)) }

func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// endOf names the end of a list in words.
func endOf(scope string) string {
	if scope == "" {
		return End
	}
	if step, branch, ok := strings.Cut(scope, "/"); ok {
		return fmt.Sprintf("the end of branch %s of %s", branch, step)
	}
	return "the end of the body of " + scope
}

// Describe says in words what the picture shows, for people who do not
// see it (the SVG's desc).
func (l *Layout) Describe() string {
	var b strings.Builder
	for _, e := range l.Edges {
		to := e.To
		if to == End {
			to = endOf(e.Scope)
		}
		fmt.Fprintf(&b, "%s to %s", e.From, to)
		if e.Label != "" {
			fmt.Fprintf(&b, " (%s)", e.Label)
		}
		b.WriteString("; ")
	}
	s := strings.TrimSuffix(b.String(), "; ")
	var more []string
	for _, nd := range l.Nodes {
		switch {
		case nd.Type == string(flow.TypeParallel) && nd.Frame:
			var names []string
			for _, c := range nd.Columns {
				names = append(names, c.Name)
			}
			more = append(more, fmt.Sprintf("%s runs the branches %s at the same time (%s)", nd.ID, strings.Join(names, ", "), strings.TrimPrefix(nd.Heading[0], "parallel · ")))
		case nd.Type == string(flow.TypeForeach) && nd.Frame:
			more = append(more, fmt.Sprintf("%s runs its body %s (%s)", nd.ID, strings.TrimPrefix(nd.Heading[0], "foreach "), nd.Heading[1]))
		case nd.Href != "":
			more = append(more, fmt.Sprintf("%s starts %s", nd.ID, nd.Heading[0]))
		}
	}
	var marks []string
	for _, nd := range l.Nodes {
		switch {
		case nd.Failed:
			marks = append(marks, nd.ID+" failed")
		case nd.Current:
			marks = append(marks, nd.ID+" is current")
		}
	}
	if len(more) > 0 {
		s += ". " + strings.Join(more, "; ")
	}
	if len(marks) > 0 {
		s += ". " + strings.Join(marks, ", ") + "."
	}
	return s
}

// classes lists a node's classes: its kind, then its marks.
func classes(nd Node) string {
	cls := "node"
	switch {
	case nd.Frame:
		cls = "frame " + nd.Type
	case nd.Type == "end":
		cls += " end"
	case nd.Type == string(flow.TypeReturn), nd.Type == string(flow.TypeFail):
		cls += " terminal"
	case nd.Href != "":
		cls += " link"
	}
	for _, m := range []struct {
		on   bool
		name string
	}{{nd.Taken, "taken"}, {nd.Current, "current"}, {nd.Failed, "failed"}} {
		if m.on {
			cls += " " + m.name
		}
	}
	return cls
}

// SVG draws the layout. id prefixes the element ids (title, desc,
// arrow heads) so that two pictures can share a page. Styling is by
// class only (the pages' stylesheet), never inline style, so the
// pages' Content-Security-Policy holds.
//
// A picture without links is one image (role img) described by its
// title and desc. One with links (flow steps) is a group instead, since
// an image hides what is inside it, links included: its drawing is hidden
// from screen readers, the desc says it in words, and the links are read
// with their own names.
func (l *Layout) SVG(id string) template.HTML {
	var b strings.Builder
	esc := template.HTMLEscapeString
	role, hidden := "img", ""
	if slices.ContainsFunc(l.Nodes, func(nd Node) bool { return nd.Href != "" }) {
		role, hidden = "group", ` aria-hidden="true"`
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="flow-diagram" width="%d" height="%d" viewBox="0 0 %d %d" role="%s" aria-labelledby="%s-title %s-desc">`,
		l.Width, l.Height, l.Width, l.Height, role, esc(id), esc(id))
	fmt.Fprintf(&b, `<title id="%s-title">Diagram of %s</title><desc id="%s-desc">%s</desc>`, esc(id), esc(l.Title), esc(id), esc(l.Describe()))
	fmt.Fprintf(&b, `<defs><marker id="%s-arrow" class="arrowhead" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z"/></marker>`, esc(id))
	fmt.Fprintf(&b, `<marker id="%s-arrow-taken" class="arrowhead taken" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z"/></marker></defs>`, esc(id))
	// Frames first, outer before inner, so that the arrows and boxes
	// they hold are drawn over them.
	for _, nd := range l.Nodes {
		if !nd.Frame {
			continue
		}
		fmt.Fprintf(&b, `<g class="%s" data-step="%s"%s><rect x="%d" y="%d" width="%d" height="%d" rx="8"/>`, classes(nd), esc(nd.ID), hidden, nd.X, nd.Y, nd.W, nd.H)
		tx, ty := nd.X+framePad, nd.Y+framePad+lineH-4
		fmt.Fprintf(&b, `<text class="frame-id" x="%d" y="%d">%s</text>`, tx, ty, esc(fit(nd.ID, nd.W-2*framePad)))
		for i, h := range nd.Heading {
			if i == len(nd.Heading)-1 {
				switch {
				case nd.Failed:
					h += " · failed"
				case nd.Current:
					h += " · current"
				}
			}
			fmt.Fprintf(&b, `<text class="kind" x="%d" y="%d">%s</text>`, tx, ty+(i+1)*lineH, esc(cut(h, max((nd.W-2*framePad)/labelCharW, 4))))
		}
		for _, c := range nd.Columns {
			fmt.Fprintf(&b, `<g class="branch" data-branch="%s"><rect class="column" x="%d" y="%d" width="%d" height="%d" rx="6"/><text class="branch-name" x="%d" y="%d">%s</text></g>`,
				esc(c.Name), c.X, c.Y, c.W, c.H, c.X+8, c.Y+branchTop-8, esc(fit("branch "+c.Name, c.W-16)))
		}
		b.WriteString(`</g>`)
	}
	for _, e := range l.Edges {
		cls, marker := "edge", id+"-arrow"
		if e.Taken {
			cls, marker = "edge taken", id+"-arrow-taken"
		}
		var pts []string
		for _, p := range e.Points {
			pts = append(pts, fmt.Sprintf("%d,%d", p[0], p[1]))
		}
		fmt.Fprintf(&b, `<g class="%s" data-from="%s" data-to="%s"%s><polyline points="%s" fill="none" marker-end="url(#%s)"/>`,
			cls, esc(e.From), esc(e.To), hidden, strings.Join(pts, " "), esc(marker))
		if e.Label != "" {
			anchor := "middle"
			if e.Back || e.Skip {
				anchor = "start"
			}
			fmt.Fprintf(&b, `<text class="edge-label" x="%d" y="%d" text-anchor="%s">%s</text>`, e.LabelX, e.LabelY, anchor, esc(short(e.Label)))
		}
		b.WriteString(`</g>`)
	}
	for _, nd := range l.Nodes {
		if nd.Frame {
			continue
		}
		if nd.Href != "" {
			name := "child flow " + strings.TrimPrefix(nd.Heading[0], "flow ")
			if strings.HasPrefix(nd.Href, "/instances/") {
				name = "child instance of " + strings.TrimPrefix(nd.Heading[0], "flow ")
			}
			fmt.Fprintf(&b, `<a href="%s" aria-label="Step %s: %s">`, esc(nd.Href), esc(nd.ID), esc(name))
			fmt.Fprintf(&b, `<g class="%s" data-step="%s">`, classes(nd), esc(nd.ID))
		} else {
			fmt.Fprintf(&b, `<g class="%s" data-step="%s"%s>`, classes(nd), esc(nd.ID), hidden)
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" rx="6"/>`, nd.X, nd.Y, nd.W, nd.H)
		if nd.Type == "end" {
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">end</text></g>`, nd.X+nd.W/2, nd.Y+nd.H/2+5)
			continue
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`, nd.X+nd.W/2, nd.Y+19, esc(short(nd.ID)))
		kind := nd.Type
		if len(nd.Heading) > 0 {
			kind = nd.Heading[0]
		}
		switch {
		case nd.Failed:
			kind += " · failed"
		case nd.Current:
			kind += " · current"
		}
		fmt.Fprintf(&b, `<text class="kind" x="%d" y="%d" text-anchor="middle">%s</text></g>`, nd.X+nd.W/2, nd.Y+35, esc(fit(kind, nd.W-8)))
		if nd.Href != "" {
			b.WriteString(`</a>`)
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
