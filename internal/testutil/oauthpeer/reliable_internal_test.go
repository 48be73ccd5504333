package oauthpeer

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A peer that never gets ready (a stand-in for node stuck in its start)
// is reported and killed, not left running.
func TestTryStartKillsAStuckPeer(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	stuck := filepath.Join(dir, "stuck-node")
	script := "#!/bin/sh\necho $$ > " + pidFile + "\necho starting >&2\nexec sleep 60\n"
	if err := os.WriteFile(stuck, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	p := &Peer{}
	start := time.Now()
	err := p.tryStart(stuck, dir, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not ready") || !strings.Contains(err.Error(), "starting") {
		t.Fatalf("tryStart: %v, want not ready with the peer's stderr", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("tryStart took %s", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Signal(syscall.Signal(0)); err == nil {
		_ = proc.Kill()
		t.Fatalf("the stuck process %d is still running", pid)
	}
	if p.cmd != nil || p.Issuer != "" {
		t.Fatal("a failed start left the peer half set up")
	}
}
