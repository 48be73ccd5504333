package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil/smtppeer"
)

// `flowgate serve` as configured: a webhook whose secret is in the
// server's environment starts a flow (signed by openssl, not by us), whose
// email step reaches a real SMTP server over STARTTLS with the configured
// credentials.
func TestServeWebhookSendsEmail(t *testing.T) {
	certFile, keyFile, trust := smtppeer.Cert(t)
	peer := smtppeer.Start(t, 0, certFile, keyFile, trust)
	dir := t.TempDir()
	flows := filepath.Join(dir, "flows")
	if err := os.Mkdir(flows, 0o755); err != nil {
		t.Fatal(err)
	}
	flow := `name: hooked
input:
  action: {type: string, required: true}
triggers:
  - {webhook: gh, secret: "${HOOK_SECRET}", signature: github}
steps:
  - id: tell
    type: email
    to: [ops@example.com]
    subject: "Hook ${{ input.action }}"
    body: "Something was ${{ input.action }}."
  - {id: done, type: return}
`
	if err := os.WriteFile(filepath.Join(flows, "hooked.yaml"), []byte(flow), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "flowgate.yaml")
	text := "flows: " + flows + "\nnotifications:\n  smtp:\n    host: 127.0.0.1\n    port: " + strconv.Itoa(peer.Port) +
		"\n    username: " + smtppeer.User + "\n    password: " + smtppeer.Password +
		"\n    from: \"Flowgate <flowgate@example.com>\"\n    starttls: true\n"
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	// The peer's certificate is the server's only trusted root.
	s := startServe(t, dir, []string{"FLOWGATE_SECRET_KEY=" + durableKey, "HOOK_SECRET=hook-secret-value", "SSL_CERT_FILE=" + certFile},
		"--config", cfg)
	body := []byte(`{"action":"opened"}`)
	cmd := exec.Command("openssl", "dgst", "-sha256", "-hmac", "hook-secret-value", "-r")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("openssl: %v", err)
	}
	sig, _, _ := strings.Cut(string(out), " ")
	req, _ := http.NewRequest("POST", s.base+"/hooks/hooked/gh", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", "sha256="+sig)
	code, answer := doJSON(t, req)
	if code != http.StatusAccepted {
		t.Fatalf("webhook: %d %v\n%s", code, answer, s.stderr.String())
	}
	msgs := peer.Wait(t, 1, 30*time.Second)
	if got := msgs[0].Header(t, "Subject"); got != "Hook opened" || len(msgs[0].To) != 1 || msgs[0].To[0] != "ops@example.com" || !msgs[0].Secure {
		t.Errorf("mail: subject %q to %v secure %v", got, msgs[0].To, msgs[0].Secure)
	}
	// Replayed: refused.
	req, _ = http.NewRequest("POST", s.base+"/hooks/hooked/gh", bytes.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", "sha256="+sig)
	if code, _ := doJSON(t, req); code != http.StatusUnauthorized {
		t.Errorf("replay: %d", code)
	}
	if code := s.stop(t); code != 0 {
		t.Errorf("serve exited %d", code)
	}
}
