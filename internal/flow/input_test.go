package flow

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestValidateInput(t *testing.T) {
	d := mustParse(t, `name: t
input:
  amount: {type: number, required: true}
  purpose: {type: string}
  count: {type: integer, default: 1}
  urgent: {type: boolean, default: false}
  kind: {type: string, enum: [travel, meals]}
  meta: {type: object, default: {source: web}}
  lines: {type: array}
steps:
  - {id: a, type: return}
`)
	tests := []struct {
		name  string
		input map[string]any
		want  map[string]any
		err   string
	}{
		{"minimal with defaults", map[string]any{"amount": 12.5},
			map[string]any{"amount": 12.5, "count": 1, "urgent": false, "meta": map[string]any{"source": "web"}}, ""},
		{"all fields", map[string]any{"amount": json.Number("7"), "purpose": "x", "count": 3.0, "urgent": true,
			"kind": "meals", "meta": map[string]any{}, "lines": []any{1}},
			map[string]any{"amount": 7.0, "purpose": "x", "count": 3, "urgent": true, "kind": "meals",
				"meta": map[string]any{}, "lines": []any{1}}, ""},
		{"null is absent", map[string]any{"amount": 1.0, "purpose": nil},
			map[string]any{"amount": 1.0, "count": 1, "urgent": false, "meta": map[string]any{"source": "web"}}, ""},
		{"required", map[string]any{}, nil, "input.amount: required"},
		{"required null", map[string]any{"amount": nil}, nil, "input.amount: required"},
		{"nil input", nil, nil, "input.amount: required"},
		{"number type", map[string]any{"amount": "12"}, nil, "input.amount: want number, got string"},
		{"integer whole", map[string]any{"amount": 1.0, "count": 1.5}, nil, "input.count: want integer, got 1.5"},
		{"integer type", map[string]any{"amount": 1.0, "count": true}, nil, "input.count: want integer, got boolean"},
		{"boolean type", map[string]any{"amount": 1.0, "urgent": "yes"}, nil, "input.urgent: want boolean, got string"},
		{"string type", map[string]any{"amount": 1.0, "purpose": 5.0}, nil, "input.purpose: want string, got number"},
		{"object type", map[string]any{"amount": 1.0, "meta": []any{}}, nil, "input.meta: want object, got array"},
		{"array type", map[string]any{"amount": 1.0, "lines": map[string]any{}}, nil, "input.lines: want array, got object"},
		{"enum", map[string]any{"amount": 1.0, "kind": "fun"}, nil, `input.kind: want one of "travel", "meals"`},
		{"unknown field", map[string]any{"amount": 1.0, "amout": 2.0}, nil,
			"input.amout: unknown field (fields: amount, purpose, count, urgent, kind, meta, lines)"},
		{"every problem at once", map[string]any{"purpose": 1.0, "zz": 1, "aa": 2}, nil,
			"input.amount: required\ninput.purpose: want string, got number\n" +
				"input.aa: unknown field (fields: amount, purpose, count, urgent, kind, meta, lines)\n" +
				"input.zz: unknown field (fields: amount, purpose, count, urgent, kind, meta, lines)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.ValidateInput(tt.input)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %s", err, tt.err)
				}
				var ie *InputError
				if !errors.As(err, &ie) {
					t.Errorf("err is not an *InputError")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
	// Defaults are copied: changing one instance's input leaves the next
	// instance's default alone.
	a, _ := d.ValidateInput(map[string]any{"amount": 1.0})
	a["meta"].(map[string]any)["source"] = "changed"
	b, _ := d.ValidateInput(map[string]any{"amount": 1.0})
	if b["meta"].(map[string]any)["source"] != "web" {
		t.Error("a default was shared between instances")
	}
	if _, err := d.ValidateInput(map[string]any{"amount": 1.0, "x": 1}); !errors.Is(err, ErrUnknownField) {
		t.Errorf("errors.Is(ErrUnknownField) = false for %v", err)
	}
	if _, err := d.ValidateInput(map[string]any{}); !errors.Is(err, ErrRequired) {
		t.Errorf("errors.Is(ErrRequired) = false for %v", err)
	}
}

func TestValidateForm(t *testing.T) {
	d := mustParse(t, `name: t
steps:
  - id: a
    type: task
    title: T
    assignees: [role:x]
    actions: [OK]
    form:
      comment: {type: string, required: true}
      score: {type: integer}
    next: {OK: a}
`)
	task := d.Steps[0].Task
	if _, err := task.ValidateForm(map[string]any{"score": 2.5, "other": 1}); err == nil ||
		err.Error() != "data.comment: required\ndata.score: want integer, got 2.5\ndata.other: unknown field (fields: comment, score)" {
		t.Errorf("Task.ValidateForm = %v", err)
	}
	got, err := ValidateForm(task.Form, map[string]any{"comment": "fine", "score": 4.0})
	if err != nil || !reflect.DeepEqual(got, map[string]any{"comment": "fine", "score": 4}) {
		t.Errorf("ValidateForm = %v, %v", got, err)
	}
	// A task without a form takes no data.
	if _, err := ValidateForm(nil, map[string]any{"x": 1}); err == nil || err.Error() != "data.x: unknown field" {
		t.Errorf("ValidateForm(no form) = %v", err)
	}
}

func TestSummary(t *testing.T) {
	d := mustParse(t, `name: t
title: Expense
input:
  purpose: {type: string, description: What for}
  amount: {type: number, required: true}
  urgent: {type: boolean, default: false}
steps:
  - {id: a, type: return}
`)
	d.Version = 4
	b, err := json.Marshal(d.Summary())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"t","title":"Expense","version":4,"input":{"purpose":{"type":"string","required":false,"description":"What for"},"amount":{"type":"number","required":true},"urgent":{"type":"boolean","required":false,"default":false}}}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	var back Workflow
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, d.Summary()) {
		t.Errorf("round trip: %#v", back)
	}
	empty := mustParse(t, "name: e\nsteps: [{id: a, type: return}]\n")
	if b, _ := json.Marshal(empty.Summary()); string(b) != `{"name":"e","title":"e","version":0,"input":{}}` {
		t.Errorf("empty summary = %s", b)
	}
}
