package oauthpeer

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil/prereq"
	"github.com/flowgate/flowgate/internal/testutil/syncbuf"
)

// Start makes up to three attempts, each given 10 s to be ready: a healthy
// peer is ready in well under a second, a few seconds on a loaded machine.
// Why: on Node.js 20, exporting a key straight from
// crypto.generateKeyPairSync can deadlock when a garbage collection runs
// during the export (about one start in a few hundred; `node
// --gc-interval=50` made it happen every time). The peers now export
// through a KeyObject of their own, which held up under that forced GC;
// the retry stays as a guard, since a stuck peer would otherwise fail the
// test and leave a process behind.
const (
	reliableAttempts     = 3
	reliableReadyTimeout = 10 * time.Second
)

// peerPrerequisites finds node and the peer's directory, skipping the
// test (failing it when CI=true) without them, as Start does.
func peerPrerequisites(t testing.TB) (node, dir string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		prereq.Missing(t, "node not found: %v (install Node.js 20+)", err)
	}
	dir, err = prereq.PeerDir("oidc-provider")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider")); err != nil {
		prereq.Missing(t, "oidc-provider peer not installed: run `npm ci --prefix test/peers/oidc-provider` (%v)", err)
	}
	return node, dir
}

// tryStart is start returning what went wrong, with the stuck or failed
// process killed and reaped.
func (p *Peer) tryStart(node, dir string, timeout time.Duration) error {
	script := p.opts.Script
	if script == "" {
		script = "outbound.js"
	}
	cmd := exec.Command(node, script)
	cmd.Dir = dir
	env := append(os.Environ(), "PORT="+strconv.Itoa(p.opts.Port))
	if p.opts.AccessTTL > 0 {
		env = append(env, "ACCESS_TTL="+strconv.Itoa(int(p.opts.AccessTTL/time.Second)))
	}
	if p.opts.PKJWTJWKS != "" {
		env = append(env, "PKJWT_JWKS="+p.opts.PKJWTJWKS)
	}
	if p.opts.RedirectURI != "" {
		env = append(env, "REDIRECT_URI="+p.opts.RedirectURI)
	}
	if p.opts.DPoPNonce {
		env = append(env, "DPOP_NONCE=1")
	}
	cmd.Env = append(env, p.opts.Env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr := &syncbuf.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if iss, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				ready <- iss
			}
		}
	}()
	var issuer string
	select {
	case issuer = <-ready:
	case <-done:
		return fmt.Errorf("exited: %s", stderr)
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("not ready after %s: %s", timeout, stderr)
	}
	i := strings.LastIndexByte(issuer, ':')
	port, err := strconv.Atoi(issuer[i+1:])
	if err != nil {
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("issuer %q: %w", issuer, err)
	}
	p.cmd, p.done, p.stderr = cmd, done, stderr
	p.Issuer, p.Port, p.opts.Port = issuer, port, port
	return nil
}
