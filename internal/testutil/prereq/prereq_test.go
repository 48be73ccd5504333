package prereq

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestStrict(t *testing.T) {
	for _, c := range []struct {
		ci, strict string
		want       bool
	}{
		{"", "", false},
		{"true", "", true},
		{"", "1", true},
		{"false", "0", false},
	} {
		t.Setenv("CI", c.ci)
		t.Setenv(StrictEnv, c.strict)
		if got := Strict(); got != c.want {
			t.Errorf("CI=%q %s=%q: Strict() = %v, want %v", c.ci, StrictEnv, c.strict, got, c.want)
		}
	}
}

// TestMissing runs itself in a child process, where a prerequisite is
// declared missing, and checks the child failed under the strict setting
// and skipped without it.
func TestMissing(t *testing.T) {
	if os.Getenv("PREREQ_CHILD") == "1" {
		Missing(t, "pretend %s is missing", "chromium")
		t.Fatal("Missing returned")
	}
	for _, strict := range []bool{true, false} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissing$", "-test.v")
		cmd.Env = append(os.Environ(), "PREREQ_CHILD=1", "CI=")
		if strict {
			cmd.Env = append(cmd.Env, StrictEnv+"=1")
		} else {
			cmd.Env = append(cmd.Env, StrictEnv+"=")
		}
		out, err := cmd.CombinedOutput()
		switch {
		case strict && (err == nil || !strings.Contains(string(out), "--- FAIL")):
			t.Errorf("strict: want a failed test, got err=%v:\n%s", err, out)
		case !strict && (err != nil || !strings.Contains(string(out), "--- SKIP")):
			t.Errorf("not strict: want a skipped test, got err=%v:\n%s", err, out)
		}
		if !strings.Contains(string(out), "pretend chromium is missing") {
			t.Errorf("the message is not shown:\n%s", out)
		}
	}
}

// TestPeerDir checks the peers folder is found at the module root from a
// package's directory, where go test runs the test.
func TestPeerDir(t *testing.T) {
	dir, err := PeerDir("axe")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "package.json")); err != nil {
		t.Fatalf("PeerDir(axe) = %s, which has no package.json: %v", dir, err)
	}
}
