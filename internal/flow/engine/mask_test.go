package engine

import (
	"encoding/json"
	"net/url"
	"testing"
)

// TestMaskKeepsStructure checks the masking of records on its own: every
// form of a value inside strings and keys, and nothing outside strings,
// so a value that reads like a number or a literal never breaks a record.
func TestMaskKeepsStructure(t *testing.T) {
	r := &runner{}
	for _, v := range []string{"12345678", `a"b<c> d`, "ab", "null"} {
		r.learnSecret(v)
	}
	if len(r.st.Secrets) != 3 {
		t.Fatalf("learned %q; want the 2-byte value left out", r.st.Secrets)
	}
	embedded, _ := json.Marshal(map[string]string{"q": `a"b<c> d`})
	doc, _ := json.Marshal(map[string]any{
		"n":         12345678,
		"s":         "x12345678y",
		"k12345678": "v",
		"url":       "https://x.example/?q=" + url.QueryEscape(`a"b<c> d`),
		"json":      string(embedded),
		"null":      nil,
		"short":     "ab",
	})
	got := r.maskJSON(doc)
	var m map[string]any
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatalf("masked record %s is not JSON: %v", got, err)
	}
	want := map[string]any{
		"n": 12345678.0, "s": "x****y", "k****": "v", "url": "https://x.example/?q=****",
		"json": `{"q":"****"}`, "short": "ab",
	}
	// The key "null" is masked; the value null is left alone.
	if v, ok := m["****"]; !ok || v != nil {
		t.Errorf(`key "null": %s`, got)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v (record %s)", k, m[k], v, got)
		}
	}
	if s := r.maskText("Get https://x.example/?q=" + url.PathEscape(`a"b<c> d`) + ": 12345678"); s != "Get https://x.example/?q=****: ****" {
		t.Errorf("maskText = %q", s)
	}
	// Nothing learned: records pass untouched.
	if b := (&runner{}).maskJSON(doc); string(b) != string(doc) {
		t.Errorf("masked without secrets: %s", b)
	}
}
