// Package prereq decides what a test does when something it needs from
// the machine (PostgreSQL, Chromium, Node.js and the npm test peers) is
// missing: a developer's ad-hoc `go test` skips the test, while the
// project's test command and CI fail it, so a missing dependency can
// never pass as a silent skip.
package prereq

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// StrictEnv is set to 1 by ./scripts/test; CI=true has the same effect.
const StrictEnv = "FLOWGATE_TEST_STRICT"

// Strict reports whether a missing prerequisite must fail the test.
func Strict() bool {
	return os.Getenv("CI") == "true" || os.Getenv(StrictEnv) == "1"
}

// Missing ends the test because a prerequisite is missing: it fails it
// when Strict, and skips it otherwise. The message should say what to
// install.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Strict() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// PeerDir returns test/peers/<name> under the module root, found by walking
// up from the test's working directory to go.mod, so it is the same
// folder whichever package's test asks.
func PeerDir(name string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "test", "peers", name), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test's directory %s", dir)
		}
		dir = parent
	}
}
