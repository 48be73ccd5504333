package flow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// After returns the id of the step that runs after the one-way step id
// (http, oauth_*, set, wait, parallel, foreach, flow): its next, else the
// following step in its list. "" means the list ends: the last step of
// the flow's own list without next completes the instance with no output,
// as a return step with status 200 and no body would; in a branch or a
// foreach body it ends that branch or item.
func (d *Definition) After(id string) string {
	p, ok := d.index[id]
	if !ok {
		return ""
	}
	if next := p.list[p.i].Next; next != "" {
		return next
	}
	return d.following(id)
}

// following is the step after id in its list, "" for the last.
func (d *Definition) following(id string) string {
	p, ok := d.index[id]
	if !ok || p.i+1 >= len(p.list) {
		return ""
	}
	return p.list[p.i+1].ID
}

// AfterAction returns the step that an action on task step id leads to:
// the task's next for the action, else the following step. Parse
// guarantees every action leads somewhere.
func (d *Definition) AfterAction(id, action string) (string, error) {
	s, ok := d.Step(id)
	if !ok || s.Task == nil {
		return "", fmt.Errorf("%s: no task step %q", d.Name, id)
	}
	if !slices.Contains(s.Task.Actions, action) {
		return "", fmt.Errorf("%s: step %q: %q is not one of the actions", d.Name, id, action)
	}
	if next, ok := s.Task.Next[action]; ok {
		return next, nil
	}
	return d.following(id), nil
}

// AfterSwitch evaluates the cases of switch step id in order and returns
// the next of the first that holds, else the default, else the following
// step ("" when the switch is last: the instance completes).
func (d *Definition) AfterSwitch(id string, env *Env) (string, error) {
	s, ok := d.Step(id)
	if !ok || s.Switch == nil {
		return "", fmt.Errorf("%s: no switch step %q", d.Name, id)
	}
	for _, c := range s.Switch.Cases {
		v, err := c.When.Evaluate(env)
		if err != nil {
			return "", err
		}
		if b, _ := v.(bool); b {
			return c.Next, nil
		}
	}
	if s.Switch.Default != "" {
		return s.Switch.Default, nil
	}
	return d.following(id), nil
}

// Deadline returns when a wait that starts at start ends: start plus the
// duration, or the until time (a time.Time, or an RFC 3339 string).
func (w *Wait) Deadline(start time.Time, env *Env) (time.Time, error) {
	if w.Until == nil {
		return start.Add(w.Duration).UTC(), nil
	}
	v, err := w.Until.Evaluate(env)
	if err != nil {
		return time.Time{}, err
	}
	switch x := v.(type) {
	case time.Time:
		return x.UTC(), nil
	case string:
		t, err := time.Parse(time.RFC3339, x)
		if err != nil {
			return time.Time{}, w.Until.fail(fmt.Errorf("%q is not an RFC 3339 time", x))
		}
		return t.UTC(), nil
	}
	return time.Time{}, w.Until.fail(fmt.Errorf("want a time, got %s", typeName(v)))
}

// DueAt returns when a task opened at start is due: start plus due, or the
// time the due expression gives (a time.Time or an RFC 3339 string). Zero
// when the task has no due time.
func (d *Deadline) DueAt(start time.Time, env *Env) (time.Time, error) {
	switch {
	case d == nil:
		return time.Time{}, nil
	case d.DueExpr != nil:
		return timeValue(d.DueExpr, env)
	case d.Due > 0:
		return start.Add(d.Due).UTC(), nil
	}
	return time.Time{}, nil
}

// timeValue evaluates t to a time: a time.Time or an RFC 3339 string.
func timeValue(t *Template, env *Env) (time.Time, error) {
	v, err := t.Evaluate(env)
	if err != nil {
		return time.Time{}, err
	}
	switch x := v.(type) {
	case time.Time:
		return x.UTC(), nil
	case string:
		tm, err := time.Parse(time.RFC3339, x)
		if err != nil {
			return time.Time{}, t.fail(fmt.Errorf("%q is not an RFC 3339 time", x))
		}
		return tm.UTC(), nil
	}
	return time.Time{}, t.fail(fmt.Errorf("want a time, got %s", typeName(v)))
}

// StatusCode returns the return step's HTTP status, evaluating it when it
// is an expression.
func (r *Return) StatusCode(env *Env) (int, error) {
	if r.StatusExpr == nil {
		return r.Status, nil
	}
	v, err := r.StatusExpr.Evaluate(env)
	if err != nil {
		return 0, err
	}
	f, ok := toFloat(v)
	if !ok || f != float64(int(f)) || f < 200 || f > 599 {
		return 0, r.StatusExpr.fail(fmt.Errorf("want a final HTTP status 200–599, got %v", v))
	}
	return int(f), nil
}

// serverUse is where a step names an OAuth server.
type serverUse struct {
	server, step, field string
	line, column        int
}

// Servers lists the OAuth servers the flow uses, sorted.
func (d *Definition) Servers() []string {
	var out []string
	for _, u := range d.servers {
		if !slices.Contains(out, u.server) {
			out = append(out, u.server)
		}
	}
	slices.Sort(out)
	return out
}

// CheckServers refuses a flow that names an OAuth server known does not
// know: one *Problem per step and key that does, with its line, joined as
// Parse joins them. Parse cannot check this itself, since which servers
// exist changes without the flow changing; deploying checks it against the
// servers configured at that moment.
func (d *Definition) CheckServers(known func(name string) bool) error {
	var ps []*Problem
	for _, u := range d.servers {
		if !known(u.server) {
			ps = append(ps, &Problem{File: d.File, Line: u.line, Column: u.column, Flow: d.Name, Step: u.step, Field: u.field,
				Err: fmt.Errorf("%q is not a configured OAuth server (oauth_servers in the configuration, or the admin API)", u.server)})
		}
	}
	return joinProblems(ps)
}

// Workflow is a workflow as the REST API shows it (docs/api.md).
type Workflow struct {
	Name    string      `json:"name"`
	Title   string      `json:"title"`
	Version int         `json:"version"`
	Input   InputFields `json:"input"`
}

// FieldSummary is one input field as the REST API shows it.
type FieldSummary struct {
	Type        string `json:"type"`
	Required    bool   `json:"required"`
	Description string `json:"description,omitempty"`
	Enum        []any  `json:"enum,omitempty"`
	Default     any    `json:"default,omitempty"`
}

// InputFields are input fields in declaration order; they encode as a JSON
// object whose keys keep that order, so forms list fields as written.
type InputFields struct {
	Order  []string
	Fields map[string]FieldSummary
}

// MarshalJSON encodes the fields as one object in declaration order.
func (f InputFields) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, name := range f.Order {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(name)
		if err != nil {
			return nil, fmt.Errorf("input field name: %w", err)
		}
		v, err := json.Marshal(f.Fields[name])
		if err != nil {
			return nil, fmt.Errorf("input field %s: %w", name, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON decodes an object of fields, keeping the order of its keys.
func (f *InputFields) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("input fields: %w", err)
	}
	if tok == nil {
		*f = InputFields{}
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("input fields: want an object")
	}
	out := InputFields{Fields: map[string]FieldSummary{}}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("input fields: %w", err)
		}
		name, _ := tok.(string)
		var fs FieldSummary
		if err := dec.Decode(&fs); err != nil {
			return fmt.Errorf("input field %s: %w", name, err)
		}
		if _, dup := out.Fields[name]; !dup {
			out.Order = append(out.Order, name)
		}
		out.Fields[name] = fs
	}
	*f = out
	return nil
}

// Summary returns the flow as the REST API lists it.
func (d *Definition) Summary() Workflow {
	w := Workflow{Name: d.Name, Title: d.Title, Version: d.Version,
		Input: InputFields{Order: slices.Clone(d.InputOrder), Fields: make(map[string]FieldSummary, len(d.Input))}}
	if w.Input.Order == nil {
		w.Input.Order = []string{}
	}
	for _, name := range d.InputOrder {
		f := d.Input[name]
		w.Input.Fields[name] = FieldSummary{Type: f.Type, Required: f.Required, Description: f.Description,
			Enum: slices.Clone(f.Enum), Default: deepCopy(f.Default)}
	}
	return w
}
