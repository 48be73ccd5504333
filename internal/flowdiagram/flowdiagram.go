// Package flowdiagram draws a flow definition as an SVG picture: one box
// per step, an arrow per way on (next, switch cases and default, task
// actions) labelled with what leads there, and, for an instance, marks on
// the steps taken, the current step and a failed step.
//
// The layout is our own small layered one (docs/ARCHITECTURE.md says
// why): steps are put in rows by the longest way from the start, the
// steps of a row side by side under the steps leading to them, arrows between neighbouring
// rows drawn straight, and arrows that skip rows or go back (loops) drawn
// in lanes beside the boxes so they never cross one.
package flowdiagram

import (
	"fmt"
	"html/template"
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
)

// End is the id of the end node every step without a way on leads to.
const End = "(end)"

// Marks are what an instance adds to its flow's picture.
type Marks struct {
	// Path is the steps in the order they ran (the history); each is
	// marked taken, and each consecutive pair marks its arrow.
	Path []string
	// Current is the step the instance is at (a task, a wait), Failed the
	// step it failed at; "" when none.
	Current, Failed string
	// Completed marks the way from the last step of Path to the end.
	Completed bool
}

// Node is one box of the picture.
type Node struct {
	ID, Type string
	Row, Col int
	X, Y     int
	Taken    bool
	Current  bool
	Failed   bool
}

// Edge is one arrow: From and To are step ids (To may be End).
type Edge struct {
	From, To, Label string
	Taken           bool
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

// ways lists the arrows leaving each step, in the order the engine
// considers them.
func ways(def *flow.Definition, i int) []Edge {
	s := def.Steps[i]
	following := End
	if i+1 < len(def.Steps) {
		following = def.Steps[i+1].ID
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
			out = append(out, Edge{From: s.ID, To: or(c.Next), Label: strings.TrimSpace(trimExpr(c.When.String()))})
		}
		return append(out, Edge{From: s.ID, To: or(s.Switch.Default), Label: "otherwise"})
	case flow.TypeTask:
		var out []Edge
		for _, a := range s.Task.Actions {
			out = append(out, Edge{From: s.ID, To: or(s.Task.Next[a]), Label: a})
		}
		return out
	default:
		return []Edge{{From: s.ID, To: or(s.Next)}}
	}
}

// trimExpr shows a when condition without its ${{ }}.
func trimExpr(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "${{") && strings.HasSuffix(s, "}}") {
		return s[3 : len(s)-2]
	}
	return s
}

// New lays def out with the instance's marks (zero Marks for the flow
// alone).
func New(def *flow.Definition, m Marks) *Layout {
	n := len(def.Steps)
	if n == 0 {
		return &Layout{Title: def.Title, Width: 2 * margin, Height: 2 * margin}
	}
	index := make(map[string]int, n+1)
	for i, s := range def.Steps {
		index[s.ID] = i
	}
	index[End] = n
	out := make([][]Edge, n)
	for i := range def.Steps {
		// Two ways to one step become one arrow with both labels.
		for _, e := range ways(def, i) {
			if j := slices.IndexFunc(out[i], func(x Edge) bool { return x.To == e.To }); j >= 0 {
				out[i][j].Label = joinLabel(out[i][j].Label, e.Label)
				continue
			}
			out[i] = append(out[i], e)
		}
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

	// Columns: list order within a row; the widest row sets the width and
	// the others are centred.
	rows := make([][]int, row[nodes-1]+1)
	for i := 0; i < nodes; i++ {
		rows[row[i]] = append(rows[row[i]], i)
	}
	widest := 0
	for _, r := range rows {
		widest = max(widest, len(r))
	}
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
	leftW := len(leftLanes) * laneGap
	inner := widest*boxW + (widest-1)*colGap
	l := &Layout{Title: def.Title, Width: margin*2 + leftW + inner + len(rightLanes)*laneGap, Height: margin*2 + len(rows)*boxH + (len(rows)-1)*rowGap}
	pos := make([]Node, n+1)
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
				sum, k := 0.0, 0
				for _, p := range preds[i] {
					if row[p] < r {
						sum += float64(pos[p].X)
						k++
					}
				}
				if k > 0 {
					key[i] = sum / float64(k)
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
		w := len(ids)*boxW + (len(ids)-1)*colGap
		x0 := margin + leftW + (inner-w)/2
		for c, i := range ids {
			nd := Node{ID: End, Type: "end", Row: r, Col: c, X: x0 + c*(boxW+colGap), Y: margin + r*(boxH+rowGap)}
			if i < n {
				nd.ID, nd.Type = def.Steps[i].ID, string(def.Steps[i].Type)
			}
			pos[i] = nd
		}
	}

	// Marks.
	taken := map[[2]string]bool{}
	for k, id := range m.Path {
		if i, ok := index[id]; ok && i < n {
			pos[i].Taken = true
		}
		if k > 0 {
			taken[[2]string{m.Path[k-1], id}] = true
		}
	}
	if m.Completed && len(m.Path) > 0 {
		taken[[2]string{m.Path[len(m.Path)-1], End}] = true
		pos[n].Taken = true
	}
	if i, ok := index[m.Current]; ok && i < n {
		pos[i].Current = true
	}
	if i, ok := index[m.Failed]; ok && i < n {
		pos[i].Failed = true
	}
	l.Nodes = append(l.Nodes, pos[:nodes]...)

	// Arrows.
	for i := 0; i < n; i++ {
		a := pos[i]
		// Straight arrows leave the box's bottom spread over its width,
		// in the order of their targets from left to right, so that they
		// do not cross each other.
		var straight []int
		for k, e := range out[i] {
			j := index[e.To]
			if !back[[2]int{i, j}] && row[j]-row[i] == 1 {
				straight = append(straight, k)
			}
		}
		slices.SortStableFunc(straight, func(x, y int) int { return pos[index[out[i][x].To]].X - pos[index[out[i][y].To]].X })
		for k, e := range out[i] {
			j := index[e.To]
			b := pos[j]
			e.Taken = taken[[2]string{e.From, e.To}]
			// Arrows in a lane run down (or up) beside the boxes and
			// reach it, and their target, through the gaps between
			// rows, never across a box.
			lane := func(x, lane int) {
				below := a.Y + boxH + 10 + (lane%6)*5
				above := b.Y - 10 - (lane%6)*5
				sx, tx := a.X+boxW/2, b.X+boxW/2
				e.Points = [][2]int{{sx, a.Y + boxH}, {sx, below}, {x, below}, {x, above}, {tx, above}, {tx, b.Y}}
				e.LabelX, e.LabelY = x+4, below+14
			}
			switch {
			case back[[2]int{i, j}]:
				k := slices.Index(leftLanes, laneKey{i, j})
				e.Back = true
				lane(margin+leftW-(k+1)*laneGap+laneGap/2, k)
			case row[j]-row[i] > 1:
				k := slices.Index(rightLanes, laneKey{i, j})
				e.Skip = true
				lane(margin+leftW+inner+k*laneGap+laneGap/2, k)
			default:
				s := slices.Index(straight, k)
				sx := a.X + boxW*(s+1)/(len(straight)+1)
				tx := b.X + boxW/2
				e.Points = [][2]int{{sx, a.Y + boxH}, {tx, b.Y}}
				// The label sits nearer the target, where arrows of one
				// box have drawn apart.
				e.LabelX, e.LabelY = sx+(tx-sx)*3/5, a.Y+boxH+rowGap*3/5
			}
			l.Edges = append(l.Edges, e)
		}
	}
	return l
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

// short cuts a text to what fits a box.
func short(s string) string {
	r := []rune(s)
	if len(r) <= maxLabel {
		return s
	}
	return string(r[:maxLabel-1]) + "…"
}

// Describe says in words what the picture shows, for people who do not
// see it (the SVG's desc).
func (l *Layout) Describe() string {
	var b strings.Builder
	for _, e := range l.Edges {
		fmt.Fprintf(&b, "%s to %s", e.From, e.To)
		if e.Label != "" {
			fmt.Fprintf(&b, " (%s)", e.Label)
		}
		b.WriteString("; ")
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
	if len(marks) > 0 {
		b.WriteString(strings.Join(marks, ", ") + ".")
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// SVG draws the layout. id prefixes the element ids (title, desc,
// arrow heads) so that two pictures can share a page. Styling is by
// class only (the pages' stylesheet), never inline style, so the
// pages' Content-Security-Policy holds.
func (l *Layout) SVG(id string) template.HTML {
	var b strings.Builder
	esc := template.HTMLEscapeString
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="flow-diagram" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-labelledby="%s-title %s-desc">`,
		l.Width, l.Height, l.Width, l.Height, esc(id), esc(id))
	fmt.Fprintf(&b, `<title id="%s-title">Diagram of %s</title><desc id="%s-desc">%s</desc>`, esc(id), esc(l.Title), esc(id), esc(l.Describe()))
	fmt.Fprintf(&b, `<defs><marker id="%s-arrow" class="arrowhead" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z"/></marker>`, esc(id))
	fmt.Fprintf(&b, `<marker id="%s-arrow-taken" class="arrowhead taken" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z"/></marker></defs>`, esc(id))
	for _, e := range l.Edges {
		cls, marker := "edge", id+"-arrow"
		if e.Taken {
			cls, marker = "edge taken", id+"-arrow-taken"
		}
		var pts []string
		for _, p := range e.Points {
			pts = append(pts, fmt.Sprintf("%d,%d", p[0], p[1]))
		}
		fmt.Fprintf(&b, `<g class="%s" data-from="%s" data-to="%s"><polyline points="%s" fill="none" marker-end="url(#%s)"/>`,
			cls, esc(e.From), esc(e.To), strings.Join(pts, " "), esc(marker))
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
		cls := "node"
		switch nd.Type {
		case "end":
			cls += " end"
		case string(flow.TypeReturn), string(flow.TypeFail):
			cls += " terminal"
		}
		for _, m := range []struct {
			on   bool
			name string
		}{{nd.Taken, "taken"}, {nd.Current, "current"}, {nd.Failed, "failed"}} {
			if m.on {
				cls += " " + m.name
			}
		}
		fmt.Fprintf(&b, `<g class="%s" data-step="%s"><rect x="%d" y="%d" width="%d" height="%d" rx="6"/>`, cls, esc(nd.ID), nd.X, nd.Y, boxW, boxH)
		if nd.Type == "end" {
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">end</text></g>`, nd.X+boxW/2, nd.Y+boxH/2+5)
			continue
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`, nd.X+boxW/2, nd.Y+19, esc(short(nd.ID)))
		kind := nd.Type
		switch {
		case nd.Failed:
			kind += " · failed"
		case nd.Current:
			kind += " · current"
		}
		fmt.Fprintf(&b, `<text class="kind" x="%d" y="%d" text-anchor="middle">%s</text></g>`, nd.X+boxW/2, nd.Y+35, esc(kind))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
