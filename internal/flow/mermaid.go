package flow

import (
	"fmt"
	"strings"
)

// Mermaid draws the definition as a Mermaid flowchart: one node per step
// (a switch as a diamond, return and fail as ends), an edge for every way
// on (a task's actions and a switch's cases labelled), from a start node
// to the first step and to an end node where the instance completes
// without a return step. A parallel step is a subgraph holding one
// subgraph per branch, a foreach step a subgraph holding its body; a
// branch or a body that runs off its end leads to an end node of its own
// inside it. `flowgate flow graph` prints it; GitHub, GitLab and most
// wikis render it.
func (d *Definition) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart TD\n")
	title := d.Name
	if d.Title != "" {
		title = d.Title
	}
	fmt.Fprintf(&b, "    start([%s])\n", mermaidText("start: "+title))
	m := mermaid{d: d, b: &b}
	// Mermaid puts a node in the subgraph where it is first named and
	// makes an edge to a subgraph not yet written a node of its own, so
	// an edge into a frame comes after the frame.
	first := len(d.Steps) > 0 && isFrame(&d.Steps[0])
	if len(d.Steps) > 0 && !first {
		fmt.Fprintf(&b, "    start --> %s\n", mermaidID(d.Steps[0].ID))
	}
	ends := m.list(d.Steps, "", "    ")
	if first {
		fmt.Fprintf(&b, "    start --> %s\n", mermaidID(d.Steps[0].ID))
	}
	if ends {
		b.WriteString("    done([completed])\n")
	}
	return b.String()
}

type mermaid struct {
	d *Definition
	b *strings.Builder
}

func isFrame(s *Step) bool {
	return s.Type == TypeParallel && s.Parallel != nil || s.Type == TypeForeach && s.Foreach != nil
}

// list writes the steps of one list, indented by ind, and reports
// whether a step runs off its end: for the flow's own list (scope "")
// the instance completes, and the caller writes the done node; a
// branch or a body gets its own end node here.
func (m *mermaid) list(steps []Step, scope, ind string) bool {
	d, b := m.d, m.b
	frames := map[string]bool{}
	for i := range steps {
		frames[steps[i].ID] = isFrame(&steps[i])
	}
	end := "done"
	if scope != "" {
		end = "e_" + strings.TrimPrefix(mermaidID(scope), "s_")
	}
	ends := false
	var late []string
	edge := func(from, to, label string) {
		target := end
		if to != "" {
			target = mermaidID(to)
		} else {
			ends = true
		}
		line := fmt.Sprintf("%s%s --> %s\n", ind, from, target)
		if label != "" {
			line = fmt.Sprintf("%s%s -->|%s| %s\n", ind, from, mermaidText(label), target)
		}
		if frames[to] {
			late = append(late, line)
			return
		}
		b.WriteString(line)
	}
	for i := range steps {
		s := &steps[i]
		id, label := mermaidID(s.ID), mermaidText(s.ID+": "+string(s.Type))
		switch {
		case s.Type == TypeSwitch:
			fmt.Fprintf(b, "%s%s{%s}\n", ind, id, label)
			for _, c := range s.Switch.Cases {
				edge(id, c.Next, caseLabel(c.When.String()))
			}
			def := s.Switch.Default
			if def == "" {
				def = d.following(s.ID)
			}
			edge(id, def, "otherwise")
		case s.Type == TypeTask:
			fmt.Fprintf(b, "%s%s[/%s/]\n", ind, id, label)
			for _, a := range s.Task.Actions {
				next, _ := d.AfterAction(s.ID, a)
				edge(id, next, a)
			}
		case s.Type == TypeReturn, s.Type == TypeFail:
			fmt.Fprintf(b, "%s%s([%s])\n", ind, id, label)
		case s.Type == TypeParallel && s.Parallel != nil:
			fmt.Fprintf(b, "%ssubgraph %s [%s]\n", ind, id, mermaidText(s.ID+": parallel, join "+s.Parallel.Join))
			for _, br := range s.Parallel.Branches {
				sc := s.ID + "/" + br.Name
				fmt.Fprintf(b, "%s    subgraph b_%s [%s]\n", ind, strings.TrimPrefix(mermaidID(sc), "s_"), mermaidText("branch "+br.Name))
				m.list(br.Steps, sc, ind+"        ")
				fmt.Fprintf(b, "%s    end\n", ind)
			}
			fmt.Fprintf(b, "%send\n", ind)
			edge(id, d.After(s.ID), "")
		case s.Type == TypeForeach && s.Foreach != nil:
			f := s.Foreach
			fmt.Fprintf(b, "%ssubgraph %s [%s]\n", ind, id,
				mermaidText(fmt.Sprintf("%s: foreach %s in %s, concurrency %d", s.ID, f.As, caseLabel(f.Items.String()), f.Concurrency)))
			m.list(f.Steps, s.ID, ind+"    ")
			fmt.Fprintf(b, "%send\n", ind)
			edge(id, d.After(s.ID), "")
		default:
			if s.Type == TypeFlow && s.SubFlow != nil {
				label = mermaidText(s.ID + ": flow " + s.SubFlow.Flow)
			}
			fmt.Fprintf(b, "%s%s[%s]\n", ind, id, label)
			edge(id, d.After(s.ID), "")
		}
	}
	for _, l := range late {
		b.WriteString(l)
	}
	if ends && scope != "" {
		what := "an item"
		if _, branch, ok := strings.Cut(scope, "/"); ok {
			what = "branch " + branch
		}
		fmt.Fprintf(b, "%s%s([%s])\n", ind, end, mermaidText("end of "+what))
	}
	return ends
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
