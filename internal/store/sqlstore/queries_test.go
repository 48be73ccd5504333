package sqlstore

import (
	"slices"
	"testing"
)

// Lists read back as they were written, and an empty one as nil.
func TestDecodeList(t *testing.T) {
	for _, l := range [][]string{
		{"a"},
		{"openid", "profile", "email"},
		{""},
		{"", ""},
		{`quote"inside`, "back\\slash"},
		{"comma,inside", `"`, `","`},
		{"<script>&", "ü✓", "\x00ctl"},
		{"https://x.example/cb?a=1&b=2"},
	} {
		enc, err := encodeList(l)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeList(enc)
		if err != nil {
			t.Fatalf("decodeList(%s): %v", enc, err)
		}
		if !slices.Equal(got, l) {
			t.Errorf("decodeList(%s) = %q, want %q", enc, got, l)
		}
	}
	for _, empty := range []string{"", "[]", "null"} {
		if got, err := decodeList(empty); err != nil || got != nil {
			t.Errorf("decodeList(%q) = %#v, %v; want nil", empty, got, err)
		}
	}
	if _, err := decodeList(`["unterminated`); err == nil {
		t.Error("decodeList accepted broken JSON")
	}
}

func TestRebindDollar(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT 1":                                 "SELECT 1",
		"a = ? AND b = ?":                          "a = $1 AND b = $2",
		"x = '?' AND y = ? AND \"q?\" = ?":         "x = '?' AND y = $1 AND \"q?\" = $2",
		"VALUES (?, ?), (?, ?), (?, ?), (?, ?), ?": "VALUES ($1, $2), ($3, $4), ($5, $6), ($7, $8), $9",
	} {
		if got := RebindDollar(in); got != want {
			t.Errorf("RebindDollar(%q) = %q, want %q", in, got, want)
		}
	}
}
