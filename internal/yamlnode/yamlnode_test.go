package yamlnode

import (
	"errors"
	"fmt"
	"slices"
	"strings"
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

func TestPairs(t *testing.T) {
	root, extra, err := Document([]byte("base: &b {x: 1, y: 1}\nm:\n  y: 2\n  <<: [*b, {z: 3, x: 4}]\n  y: 5\n  ~: 6\n"))
	if err != nil || extra != nil || root == nil {
		t.Fatalf("Document = %v, %v, %v", root, extra, err)
	}
	var problems []string
	report := func(n *yaml.Node, key string, err error) {
		problems = append(problems, fmt.Sprintf("%d:%d %s: %v", n.Line, n.Column, key, err))
	}
	var got []string
	for _, p := range Pairs(root.Content[3], report) {
		got = append(got, p.Key.Value+"="+p.Value.Value)
	}
	// Explicit keys first and winning; then merged ones, the first merged
	// mapping winning over the second.
	if want := []string{"y=2", "x=1", "z=3"}; !slices.Equal(got, want) {
		t.Errorf("pairs = %v, want %v", got, want)
	}
	want := []string{"5:3 y: duplicate key (first at line 3)", "6:3 : a key must be a name, not null"}
	if !slices.Equal(problems, want) {
		t.Errorf("problems = %q, want %q", problems, want)
	}
}

func TestDocument(t *testing.T) {
	if root, _, err := Document([]byte("# nothing\n")); root != nil || err != nil {
		t.Errorf("comments only: %v, %v", root, err)
	}
	if _, extra, _ := Document([]byte("a: 1\n---\nb: 2\n")); extra == nil || extra.Line != 2 {
		t.Errorf("second document: %+v", extra)
	}
	_, _, err := Document([]byte("a: [1\n"))
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line == 0 || !strings.HasPrefix(err.Error(), "invalid YAML: ") {
		t.Errorf("syntax error: %v", err)
	}
}
