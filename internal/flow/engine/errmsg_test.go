package engine_test

import (
	"testing"

	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
)

// An instance's error names the step and the field once each, whether the
// failure already named them (an expression) or not (a fail step's
// message); the flow is the instance's own.
func TestFailedStepErrorNamesEachContextOnce(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, `
name: expense
permissions: {start: ["role:employee"]}
input:
  n: {type: number, required: true}
steps:
  - id: check
    type: switch
    cases:
      - when: "${{ input.n > 10 }}"
        next: stop
  - id: done
    type: return
    status: 200
    body: {size: "${{ len(input.n) }}"}
  - id: stop
    type: fail
    error: "too much: ${{ input.n }}"
`)
	for n, want := range map[float64]string{
		3:  `step "done": body.size: ${{ len(input.n) }}: invalid argument for len (type float64)`,
		20: `step "stop": too much: 20`,
	} {
		res, err := e.Invoke(t.Context(), engine.StartRequest{Workflow: "expense", Input: map[string]any{"n": n}, Caller: alice}, false)
		if err != nil {
			t.Fatal(err)
		}
		inst := waitStatus(t, s, res.Instance.ID, store.StatusFailed)
		if inst.Error != want {
			t.Errorf("n=%v: instance error\n got %q\nwant %q", n, inst.Error, want)
		}
	}
}
