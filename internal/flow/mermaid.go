package flow

import (
	"fmt"
	"strings"
)

// Mermaid draws the definition as a Mermaid flowchart: one node per step
// (a switch as a diamond, return and fail as ends), an edge for every way
// on (a task's actions and a switch's cases labelled), from a start node
// to the first step and to an end node where the instance completes
// without a return step. `flowgate flow graph` prints it; GitHub, GitLab
// and most wikis render it.
func (d *Definition) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart TD\n")
	title := d.Name
	if d.Title != "" {
		title = d.Title
	}
	fmt.Fprintf(&b, "    start([%s])\n", mermaidText("start: "+title))
	ends := false
	edge := func(from, to, label string) {
		target := "done"
		if to != "" {
			target = mermaidID(to)
		} else {
			ends = true
		}
		if label != "" {
			fmt.Fprintf(&b, "    %s -->|%s| %s\n", from, mermaidText(label), target)
			return
		}
		fmt.Fprintf(&b, "    %s --> %s\n", from, target)
	}
	if len(d.Steps) > 0 {
		edge("start", d.Steps[0].ID, "")
	}
	for i := range d.Steps {
		s := &d.Steps[i]
		id, label := mermaidID(s.ID), mermaidText(s.ID+": "+string(s.Type))
		switch s.Type {
		case TypeSwitch:
			fmt.Fprintf(&b, "    %s{%s}\n", id, label)
			for _, c := range s.Switch.Cases {
				edge(id, c.Next, caseLabel(c.When.String()))
			}
			def := s.Switch.Default
			if def == "" {
				def = d.following(s.ID)
			}
			edge(id, def, "otherwise")
		case TypeTask:
			fmt.Fprintf(&b, "    %s[/%s/]\n", id, label)
			for _, a := range s.Task.Actions {
				next, _ := d.AfterAction(s.ID, a)
				edge(id, next, a)
			}
		case TypeReturn, TypeFail:
			fmt.Fprintf(&b, "    %s([%s])\n", id, label)
		default:
			fmt.Fprintf(&b, "    %s[%s]\n", id, label)
			edge(id, d.After(s.ID), "")
		}
	}
	if ends {
		b.WriteString("    done([completed])\n")
	}
	return b.String()
}

// mermaidID makes a step id a node id: step ids may hold characters
// (such as -) that Mermaid reads as edges, and "end" is a keyword.
func mermaidID(stepID string) string {
	var b strings.Builder
	b.WriteString("s_")
	for _, r := range stepID {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			continue
		}
		fmt.Fprintf(&b, "_%x_", r)
	}
	return b.String()
}

// mermaidText quotes a label, with the characters Mermaid would read as
// syntax written as its entity codes.
func mermaidText(s string) string {
	r := strings.NewReplacer(`"`, "#quot;", "|", "#124;", "<", "#lt;", ">", "#gt;", "\n", " ")
	return `"` + r.Replace(s) + `"`
}

// caseLabel is a case's condition without the ${{ }} around a whole
// expression, which only makes the diagram wider.
func caseLabel(when string) string {
	t := strings.TrimSpace(when)
	if inner, ok := strings.CutPrefix(t, "${{"); ok {
		if inner, ok = strings.CutSuffix(inner, "}}"); ok && !strings.Contains(inner, "${{") {
			return strings.TrimSpace(inner)
		}
	}
	return when
}
