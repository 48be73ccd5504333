package flow

import (
	"strings"
	"testing"
)

const structureFlow = `name: orders
input:
  lines: {type: array}
steps:
  - id: reviews
    type: parallel
    join: any
    branches:
      legal:   [{id: legal-ok, type: task, title: "Legal review", assignees: ["role:legal"], actions: [OK, Reject]}]
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
      - id: parts
        type: foreach
        items: "${{ line.parts }}"
        as: part
        steps:
          - {id: price, type: set, vars: {p: "${{ part.sku }} of ${{ line.name }} (${{ line_index }}.${{ part_index }})"}}
  - id: done
    type: return
    body: {lines: "${{ steps[\"each-line\"].output.items }}"}
`

func TestParseStructure(t *testing.T) {
	d, err := Parse([]byte(structureFlow), "orders.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := d.Step("reviews")
	if r.Parallel == nil || r.Parallel.Join != JoinAny || len(r.Parallel.Branches) != 2 ||
		r.Parallel.Branches[0].Name != "legal" || r.Parallel.Branches[1].Name != "finance" {
		t.Fatalf("parallel = %+v", r.Parallel)
	}
	f, _ := d.Step("each-line")
	if f.Foreach == nil || f.Foreach.As != "line" || f.Foreach.Concurrency != 4 || len(f.Foreach.Steps) != 1 {
		t.Fatalf("foreach = %+v", f.Foreach)
	}
	// Each list keeps its own order: the end of a branch or body is "".
	for id, want := range map[string]string{"finance-yes": "finance-no", "finance-no": "", "legal-ok": "", "price": "", "reviews": "each-line"} {
		if got := d.After(id); got != want {
			t.Errorf("After(%s) = %q, want %q", id, got, want)
		}
	}
	if got := d.Scope("finance-no"); got != "reviews/finance" {
		t.Errorf("Scope(finance-no) = %q", got)
	}
	if got := d.Scope("price"); got != "parts" {
		t.Errorf("Scope(price) = %q", got)
	}
	if got := strings.Join(d.Locals("price"), ","); got != "line,line_index,part,part_index" {
		t.Errorf("Locals(price) = %q", got)
	}
	// The item names are read from Env.Locals.
	p, _ := d.Step("price")
	env := &Env{Locals: map[string]any{"line": map[string]any{"name": "bolts"}, "line_index": 2,
		"part": map[string]any{"sku": "B-7"}, "part_index": 0}}
	v, err := EvaluateTree(p.Set.Vars["p"], env)
	if err != nil || v != "B-7 of bolts (2.0)" {
		t.Errorf("price p = %v, %v", v, err)
	}
	var ids []string
	d.Walk(func(s *Step) { ids = append(ids, s.ID) })
	if got := strings.Join(ids, " "); got != "reviews legal-ok finance-ok finance-yes finance-no each-line parts price done" {
		t.Errorf("Walk = %s", got)
	}
}

func TestParseStructureProblems(t *testing.T) {
	const head = "name: t\nsteps:\n"
	tests := []struct{ name, src, want string }{
		{"join", head + "  - {id: a, type: parallel, join: some, branches: {b: [{id: s, type: set, vars: {x: 1}}]}}\n",
			`t.yaml:3:35: t: step "a": join: "some": want all (wait for every branch) or any (the first to complete wins)`},
		{"next leaves its branch", head + "  - {id: a, type: parallel, branches: {b: [{id: s, type: set, vars: {x: 1}, next: z}]}}\n  - {id: z, type: fail, error: x}\n",
			`t.yaml:3:83: t: step "s": next: step "z" is in the flow's own steps, not in the same list as this step: a branch or a foreach body is left only at its end`},
		{"next enters a body", head + "  - {id: a, type: set, vars: {x: 1}, next: s}\n  - {id: f, type: foreach, items: '${{ [1] }}', steps: [{id: s, type: set, vars: {x: 1}}]}\n",
			`t.yaml:3:44: t: step "a": next: step "s" is in the body of foreach step "f", not in the same list as this step: a branch or a foreach body is left only at its end`},
		{"duplicate id across lists", head + "  - {id: a, type: parallel, branches: {b: [{id: a, type: set, vars: {x: 1}}]}}\n",
			`t.yaml:3:49: t: a.branches.b[0]: id: duplicate step id "a" (also steps[0], line 3)`},
		{"unreachable in a branch", head + "  - {id: a, type: parallel, branches: {b: [{id: s, type: return}, {id: u, type: set, vars: {x: 1}}]}}\n",
			`t.yaml:3:67: t: step "u": unreachable: no step leads here`},
		{"concurrency", head + "  - {id: f, type: foreach, items: '${{ [1] }}', concurrency: 51, steps: [{id: s, type: set, vars: {x: 1}}]}\n",
			`t.yaml:3:62: t: step "f": concurrency: 51: want 1 (items in order) to 50`},
		{"as reserved", head + "  - {id: f, type: foreach, items: '${{ [1] }}', as: vars, steps: [{id: s, type: set, vars: {x: 1}}]}\n",
			`t.yaml:3:53: t: step "f": as: "vars" is a name expressions already use; choose another`},
		{"item outside its body", head + "  - {id: f, type: foreach, items: '${{ [1] }}', steps: [{id: s, type: set, vars: {x: 1}}]}\n  - {id: r, type: return, body: '${{ item }}'}\n",
			`t.yaml:4:33: t: step "r": body: ${{ item }}: unknown name item`},
		{"empty body", head + "  - {id: f, type: foreach, items: '${{ [1] }}', steps: []}\n",
			`t.yaml:3:56: t: step "f": steps: want at least one step`},
		{"no branches", head + "  - {id: a, type: parallel}\n",
			`t.yaml:3:5: t: step "a": branches: required: a mapping of branch names to lists of steps`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), "t.yaml")
			if err == nil || err.Error() != tt.want {
				t.Errorf("got  %v\nwant %s", err, tt.want)
			}
		})
	}
}
