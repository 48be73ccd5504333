// Package rpclient drives test/peers/openid-client/driver.js, a relying
// party built on panva/openid-client (an OAuth client independent of
// Flowgate), from Go tests: one JSON command per line, one JSON answer per
// line. Tests only.
package rpclient

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil/prereq"
	"github.com/flowgate/flowgate/internal/testutil/syncbuf"
)

// RP is a running driver.
type RP struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Scanner
	stderr *syncbuf.Buffer
	mu     sync.Mutex
}

// Start starts the driver and stops it when the test ends. Without Node.js
// or the peer's node_modules the test is skipped, or fails under CI.
func Start(t testing.TB) *RP {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		prereq.Missing(t, "node not found: %v (install Node.js 20+)", err)
	}
	dir, err := prereq.PeerDir("openid-client")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openid-client")); err != nil {
		prereq.Missing(t, "openid-client peer not installed: run `npm ci --prefix test/peers/openid-client` (%v)", err)
	}
	rp := &RP{stderr: &syncbuf.Buffer{}}
	rp.cmd = exec.Command(node, "driver.js")
	rp.cmd.Dir = dir
	rp.cmd.Stderr = rp.stderr
	if rp.in, err = rp.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := rp.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	rp.out = bufio.NewScanner(stdout)
	rp.out.Buffer(make([]byte, 1<<20), 1<<20)
	if err := rp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rp.in.Close()
		done := make(chan struct{})
		go func() { _ = rp.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = rp.cmd.Process.Kill()
			<-done
		}
	})
	return rp
}

// Do sends one command and returns the answer. A driver that died or
// stays silent for 30 s fails the test.
func (rp *RP) Do(t testing.TB, cmd map[string]any) map[string]any {
	t.Helper()
	rp.mu.Lock()
	defer rp.mu.Unlock()
	b, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rp.in.Write(append(b, '\n')); err != nil {
		t.Fatalf("openid-client driver: %v; stderr: %s", err, rp.stderr.String())
	}
	line := make(chan bool, 1)
	go func() { line <- rp.out.Scan() }()
	select {
	case ok := <-line:
		if !ok {
			t.Fatalf("openid-client driver stopped: %v; stderr: %s", rp.out.Err(), rp.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("openid-client driver: no answer to %s within 30 s; stderr: %s", cmd["op"], rp.stderr.String())
	}
	var v map[string]any
	if err := json.Unmarshal(rp.out.Bytes(), &v); err != nil {
		t.Fatalf("openid-client driver answered %q: %v", rp.out.Bytes(), err)
	}
	return v
}

// MustDo is Do for a command that must succeed.
func (rp *RP) MustDo(t testing.TB, cmd map[string]any) map[string]any {
	t.Helper()
	v := rp.Do(t, cmd)
	if v["ok"] != true {
		t.Fatalf("openid-client %s: %v", cmd["op"], v)
	}
	return v
}
