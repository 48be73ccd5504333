package main

import (
	"strings"
	"testing"
)

func TestKeysRotate(t *testing.T) {
	dir := t.TempDir()
	if r := run(t, dir, "", nil, "migrate"); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}
	for _, args := range [][]string{{"keys", "rotate"}, {"keys", "rotate"}, {"keys", "rotate", "--id-token"}} {
		r := run(t, dir, "", nil, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "new ") || !strings.Contains(r.stdout, "stays published") {
			t.Fatalf("%v: %+v", args, r)
		}
	}
}
