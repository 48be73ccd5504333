package flow

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// FuzzParse feeds the flow decoder arbitrary YAML or JSON: it must never
// panic, an error must name the file, and a definition it accepts must
// come back the same when its document (what export writes) is parsed
// again as JSON.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/expense-approval.yaml", "testdata/expense-approval.json", "../config/testdata/flows/expense-approval.yaml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"name: a\nsteps: [{id: s, type: set, vars: {x: 1}}]\n",
		"name: a\nsteps: [{id: s, type: switch, cases: [{when: '${{ input.x > 1 }}', next: s}], default: s}]\n",
		"name: a\nsteps: [{id: w, type: wait, duration: 1s}, {id: r, type: return, body: '${{ vars }}'}]\n",
		"name: a\ninput: {n: {type: number, required: true}}\nsteps: [{id: f, type: fail, error: '${{ input.n }}'}]\n",
		"name: a\nsteps: []\n", "steps: {}\n", "name: [\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data, "fuzz.yaml")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("the error does not name the file: %v", err)
			}
			return
		}
		out, err := json.Marshal(d.Document)
		if err != nil {
			t.Fatalf("an accepted definition does not encode: %v", err)
		}
		again, err := Parse(out, "again.json")
		if err != nil {
			t.Fatalf("an accepted definition, written as JSON, is refused: %v\n%s", err, out)
		}
		if out2, _ := json.Marshal(again.Document); string(out2) != string(out) {
			t.Fatalf("round trip changed the definition:\n%s\n%s", out, out2)
		}
	})
}

// FuzzTemplate compiles and evaluates arbitrary template text: no panic,
// and an evaluation ends within a bound however the expression is written
// (a flow author, or input, must not hang a server).
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		"plain", "${{ input.amount > 1000 }}", "Approve ${{ input.amount }} for ${{ input.purpose }}",
		"${{ steps.me.output.body.displayName }}", "${{ vars.list[0] ?? 'none' }}", "${{ len(input.purpose) }}",
		"${{ 1..3 }}", "${{ upper(user.name) }}", "${{", "}}", "${{ }}", "$${{ x }}", "${{ 'a' + 'b' }}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		tpl, err := NewTemplate(src)
		if err != nil {
			return
		}
		env := &Env{
			Input: map[string]any{"amount": 1500.0, "purpose": "travel", "list": []any{1.0, "two"}},
			Vars:  map[string]any{"list": []any{}, "n": 3},
			Steps: map[string]StepState{"me": {Output: map[string]any{"body": map[string]any{"displayName": "Alice"}}}},
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = tpl.Evaluate(env)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("evaluating %q did not end within 5 s", src)
		}
	})
}

// FuzzValidateForm checks arbitrary JSON data against a form: no panic,
// and data it accepts is accepted again unchanged (validation is
// idempotent, so a value stored after validation is still valid).
func FuzzValidateForm(f *testing.F) {
	fields := map[string]Field{
		"amount": {Type: "number", Required: true},
		"count":  {Type: "integer"},
		"note":   {Type: "string"},
		"ok":     {Type: "boolean"},
	}
	for _, s := range []string{
		`{"amount": 12.5}`, `{"amount": 1, "count": 2, "note": "x", "ok": true}`, `{"amount": "1"}`,
		`{"count": 1.5, "amount": 1}`, `{"amount": null}`, `{"other": 1}`, `{"amount": 1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var data map[string]any
		if json.Unmarshal(raw, &data) != nil {
			return
		}
		out, err := ValidateForm(fields, data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error")
			}
			return
		}
		again, err := ValidateForm(fields, out)
		if err != nil {
			t.Fatalf("validated data refused on a second check: %v (%v)", err, out)
		}
		a, _ := json.Marshal(out)
		b, _ := json.Marshal(again)
		if string(a) != string(b) {
			t.Fatalf("a second check changed the data: %s -> %s", a, b)
		}
	})
}
