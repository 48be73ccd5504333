package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const fetchFlowSrc = `name: fetch
permissions: {start: ["client:robot"]}
input:
  url: {type: string, required: true}
steps:
  - id: call
    type: http
    url: "${{ input.url }}"
  - id: done
    type: return
    body: "${{ steps.call.output.body }}"
`

// TestFlowCannotReadOwnMetrics: a flow whose URL is built from its input
// is the way a starter would make Flowgate read what only Flowgate can
// reach. Under the default egress policy, with Flowgate listening on every
// interface, neither its loopback address nor its address on another
// interface is reached; the instance fails saying why.
func TestFlowCannotReadOwnMetrics(t *testing.T) {
	dir := t.TempDir()
	fdir := filepath.Join(dir, "flows")
	if err := os.MkdirAll(fdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fdir, "fetch.yaml"), []byte(fetchFlowSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "flowgate.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `
clients:
  - id: robot
    secret: %q
    grant_types: [client_credentials]
    scopes: [workflows.read, workflows.start, flows.invoke]
flows: %s
`, robotSecret, fdir), 0o600); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(freeAddr(t))
	s := startServeAt(t, dir, "0.0.0.0:"+port, nil, "--config", cfg, "--public-url", durablePublic)
	token := robotToken(t, s.base)

	targets := map[string]string{"127.0.0.1:" + port: "loopback"}
	if ip := nonLoopbackIPv4(t); ip != "" {
		targets[net.JoinHostPort(ip, port)] = "another interface"
	}
	for target, what := range targets {
		metrics := "http://" + target + "/metrics"
		// Reachable from here: the refusal below is the policy's.
		resp, err := http.Get(metrics)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "# TYPE ") {
			t.Fatalf("%s: %s serves no metrics", what, metrics)
		}

		id := startInstance(t, s.base, token, "fetch", map[string]any{"url": metrics})
		inst := waitInstance(t, s.base, token, id, 20*time.Second, "failed", "completed")
		want := "egress denied: " + target + " (Flowgate's own address) is not allowed by the egress policy"
		if errMsg, _ := inst["error"].(string); inst["status"] != "failed" || !strings.Contains(errMsg, want) {
			t.Errorf("%s: instance %v, want failed with %q", what, inst, want)
		}
		if strings.Contains(fmt.Sprint(inst), "# TYPE ") {
			t.Errorf("%s: the metrics reached the instance", what)
		}
	}
}

// nonLoopbackIPv4 is one of this machine's other IPv4 addresses, "" when
// it has none.
func nonLoopbackIPv4(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	t.Log("no non-loopback IPv4 address: only loopback is tried")
	return ""
}
