package yamlnode

import (
	"testing"

	"gopkg.in/yaml.v3"
)

func TestNearest(t *testing.T) {
	cands := []string{"public_url", "addr", "a"}
	for in, want := range map[string]string{"publc_url": "public_url", "adr": "addr", "b": "", "zzzzzz": ""} {
		if got := Nearest(in, cands); got != want {
			t.Errorf("Nearest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDescribeAndResolve(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("a: &x {k: 1}\nb: *x\nc: null\nd: [1]\ne: true\nf: secret\n"), &doc); err != nil {
		t.Fatal(err)
	}
	m := doc.Content[0].Content
	want := []string{"a mapping", "a mapping", "null", "a list", "a boolean", "a string"}
	for i := range want {
		v := Resolve(m[2*i+1])
		if got := Describe(v); got != want[i] {
			t.Errorf("value %d: %q, want %q", i, got, want[i])
		}
	}
	if !IsNull(m[5]) || !IsNull(nil) || IsNull(m[7]) {
		t.Error("IsNull wrong")
	}
}
