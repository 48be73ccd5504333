package flow

import (
	"reflect"
	"strings"
	"testing"
)

func TestSecretNamesPerStep(t *testing.T) {
	d := mustParse(t, `name: t
steps:
  - id: call
    type: http
    method: POST
    url: "https://api.example/x?k=${{ secrets.API_KEY }}"
    headers: {X-Key: "${{ secrets.API_KEY }}"}
    form: {client_secret: "${{ secrets['CLIENT_SECRET'] }}"}
  - id: keep
    type: set
    vars: {n: "${{ 1 + 1 }}"}
  - id: done
    type: return
    body: {text: "key ${{ secrets.API_KEY }} and ${{ secrets.OTHER ?? 'none' }}"}
`)
	for id, want := range map[string][]string{"call": {"API_KEY", "CLIENT_SECRET"}, "keep": nil, "done": {"API_KEY", "OTHER"}} {
		s, _ := d.Step(id)
		got := s.SecretNames()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: SecretNames() = %v, want %v", id, got, want)
		}
	}
	s, _ := d.Step("done")
	got, err := EvaluateTree(s.Return.Body, &Env{Secrets: map[string]string{"API_KEY": "k-123", "OTHER": "o"}})
	if err != nil || !reflect.DeepEqual(got, map[string]any{"text": "key k-123 and o"}) {
		t.Errorf("body = %v, %v", got, err)
	}
}

// A secret must be read by a name known at deploy, so the engine can read
// exactly those before the step runs.
func TestSecretReadByNameOnly(t *testing.T) {
	for _, expr := range []string{"secrets", "secrets[vars.name]", "keys(secrets)", "len(secrets)"} {
		src := "name: t\nsteps:\n  - id: a\n    type: fail\n    error: \"${{ " + expr + " }}\"\n"
		_, err := Parse([]byte(src), "t.yaml")
		if err == nil || !strings.Contains(err.Error(), "t.yaml:5:12: t: step \"a\": error: ${{ "+expr+" }}: read a secret by its name: secrets.NAME") {
			t.Errorf("%s: Parse error = %v", expr, err)
		}
	}
}
