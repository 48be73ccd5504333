package flow

import (
	"os"
	"testing"
)

// BenchmarkEvaluateWhen evaluates the compiled switch condition of the
// expense example of docs/flows.md, ${{ input.amount > 1000 }}.
func BenchmarkEvaluateWhen(b *testing.B) {
	d := specFlow(b)
	when := d.Steps[0].Switch.Cases[0].When
	env := specEnv()
	b.ReportAllocs()
	for b.Loop() {
		v, err := when.Evaluate(env)
		if err != nil || v != true {
			b.Fatal(v, err)
		}
	}
}

// BenchmarkEvaluateInterpolation evaluates the docs/flows.md example's task title,
// "Approve ${{ input.amount }} for ${{ input.purpose }}".
func BenchmarkEvaluateInterpolation(b *testing.B) {
	d := specFlow(b)
	title := d.Steps[1].Task.Title
	env := specEnv()
	b.ReportAllocs()
	for b.Loop() {
		v, err := title.Evaluate(env)
		if err != nil || v != "Approve 1500 for a team dinner" {
			b.Fatal(v, err)
		}
	}
}

// BenchmarkEvaluateTree evaluates the docs/flows.md example's return body.
func BenchmarkEvaluateTree(b *testing.B) {
	d := specFlow(b)
	body := d.Steps[4].Return.Body
	env := specEnv()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EvaluateTree(body, env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse parses and compiles the docs/flows.md example, what a deploy costs.
func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("testdata/expense-approval.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, "x.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}
