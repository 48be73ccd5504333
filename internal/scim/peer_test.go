package scim_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/testutil/prereq"
)

// TestSCIMMYPeer checks the SCIM API with an independent implementation,
// SCIMMY (test/peers/scim/check.js): a User built with SCIMMY's schema is
// created, every User, Group and ListResponse returned must coerce through
// SCIMMY's core schema definitions, and a SCIMMY PatchOp (replace active
// false) must deactivate the user as read back.
func TestSCIMMYPeer(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		prereq.Missing(t, "node not found: %v (install Node.js 20+)", err)
	}
	dir, err := prereq.PeerDir("scim")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "scimmy")); err != nil {
		prereq.Missing(t, "SCIM peer not installed: run `npm ci --prefix test/peers/scim` (%v)", err)
	}
	for name, db := range backends(t) {
		t.Run(name, func(t *testing.T) {
			e := start(t, db(t))
			cmd := exec.Command(node, "check.js", e.base, e.token(t, "entra", "scim"))
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("SCIMMY check failed: %v\n%s", err, out)
			}
			if !strings.HasSuffix(strings.TrimSpace(string(out)), "PASS") {
				t.Fatalf("SCIMMY check did not finish:\n%s", out)
			}
			t.Logf("%s", out)
		})
	}
}
