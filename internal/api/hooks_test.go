package api_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
)

const hookFlow = `
name: hooked
input:
  action: {type: string, required: true}
triggers:
  - webhook: github
    secret: "${{ secrets.gh_hook }}"
    signature: github
  - webhook: signed
    secret: "${{ secrets.flowgate_hook }}"
    signature: hmac
  - schedule: "30 6 * * MON-FRI"
    timezone: Europe/Amsterdam
    input: {action: nightly}
steps:
  - {id: done, type: return, body: {action: "${{ input.action }}", who: "${{ user.id }}"}}
`

// opensslHMAC signs data with key by openssl, an implementation that is
// not Go's.
func opensslHMAC(t *testing.T, key string, data []byte) string {
	t.Helper()
	cmd := exec.Command("openssl", "dgst", "-sha256", "-hmac", key, "-r")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("openssl: %v", err)
	}
	sig, _, _ := strings.Cut(string(out), " ")
	return strings.TrimSpace(sig)
}

func (e *env) instanceCount(workflow string) int {
	e.t.Helper()
	list, _, err := e.st.ListInstances(e.t.Context(), store.InstanceFilter{Workflow: workflow}, store.Page{Limit: store.MaxLimit})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(list)
}

// Webhooks: GitHub's signature as openssl computes it starts the flow
// (202, the instance, as webhook:FLOW/NAME, the body as input); a wrong,
// missing or replayed signature, a stale timestamp and a body over 1 MiB
// are refused and start nothing. Audited either way.
func TestWebhooks(t *testing.T) {
	flowBackends(t, flowOpts{}, func(t *testing.T, e *env) {
		e.deploy(hookFlow)
		for name, v := range map[string]string{"gh_hook": "It's a Secret to Everybody", "flowgate_hook": "another-secret-value"} {
			if _, _, err := e.st.SetNamedSecret(t.Context(), name, []byte(v), time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		body := []byte(`{"action":"opened","number":42,"pull_request":{"title":"Fix"}}`)
		sig := "sha256=" + opensslHMAC(t, "It's a Secret to Everybody", body)
		gh := func(sig string, body []byte) resp {
			h := map[string]string{"X-GitHub-Event": "pull_request"}
			if sig != "" {
				h["X-Hub-Signature-256"] = sig
			}
			return e.send("POST", "/hooks/hooked/github", "", body, h)
		}
		r := gh(sig, body)
		m := want(t, r, 202, "", "")
		inst, _ := m["instance"].(map[string]any)
		id, _ := inst["id"].(string)
		if inst["started_by"] != "webhook:hooked/github" || r.header.Get("Location") != "/api/v1/instances/"+id {
			t.Fatalf("202: %s (Location %q)", r.body, r.header.Get("Location"))
		}
		got := e.waitInstance("admin", id, "completed")
		out, _ := got["output"].(map[string]any)
		if b, _ := out["body"].(map[string]any); b["action"] != "opened" || b["who"] != "webhook:hooked/github" {
			t.Errorf("output %v", got["output"])
		}
		if in, _ := got["input"].(map[string]any); in["number"] != 42.0 {
			t.Errorf("the payload's undeclared fields are not in the input: %v", got["input"])
		}
		n := e.instanceCount("hooked")

		// Refused, nothing started.
		wrong := "sha256=" + opensslHMAC(t, "not the secret", body)
		want(t, gh(wrong, body), 401, "invalid_signature", "does not match")
		want(t, gh("", body), 401, "invalid_signature", "missing")
		want(t, gh("sha256=zz", body), 401, "invalid_signature", "sha256=HEX")
		want(t, gh(sig, body), 401, "invalid_signature", "replay")
		tampered := bytes.Replace(body, []byte("42"), []byte("43"), 1)
		want(t, gh(sig, tampered), 401, "invalid_signature", "does not match")
		big := []byte(`{"action":"x","pad":"` + strings.Repeat("a", 1<<20) + `"}`)
		want(t, gh("sha256="+opensslHMAC(t, "It's a Secret to Everybody", big), big), 413, "request_too_large", "")
		want(t, e.send("POST", "/hooks/hooked/nope", "", body, map[string]string{"X-Hub-Signature-256": sig}), 404, "not_found", "")
		want(t, e.send("POST", "/hooks/nope/github", "", body, map[string]string{"X-Hub-Signature-256": sig}), 404, "not_found", "")
		// A signed body that is not what the flow takes is refused too.
		notObj := []byte(`[1,2]`)
		want(t, gh("sha256="+opensslHMAC(t, "It's a Secret to Everybody", notObj), notObj), 400, "invalid_request", "JSON object")
		noAction := []byte(`{"number":1}`)
		want(t, gh("sha256="+opensslHMAC(t, "It's a Secret to Everybody", noAction), noAction), 400, "invalid_request", "input.action")

		// hmac: over "TIMESTAMP.BODY", the timestamp within five minutes,
		// and once.
		signed := func(ts int64, body []byte, key string) resp {
			tsText := strconv.FormatInt(ts, 10)
			mac := hmac.New(sha256.New, []byte(key))
			mac.Write([]byte(tsText + "."))
			mac.Write(body)
			return e.send("POST", "/hooks/hooked/signed", "", body, map[string]string{
				"X-Flowgate-Timestamp": tsText, "X-Flowgate-Signature": "sha256=" + hex.EncodeToString(mac.Sum(nil))})
		}
		now := time.Now().Unix()
		hb := []byte(`{"action":"deploy"}`)
		want(t, signed(now, hb, "another-secret-value"), 202, "", "")
		want(t, signed(now, hb, "another-secret-value"), 401, "invalid_signature", "replay")
		want(t, signed(now-600, hb, "another-secret-value"), 401, "invalid_signature", "5m0s")
		want(t, signed(now+1, hb, "wrong-secret-value"), 401, "invalid_signature", "does not match")
		want(t, e.send("POST", "/hooks/hooked/signed", "", hb, nil), 401, "invalid_signature", "Timestamp")

		if m := e.instanceCount("hooked"); m != n+1 {
			t.Errorf("%d instances after the refusals and one good hmac call, want %d", m, n+1)
		}
		var ok, refused int
		for _, ev := range e.audit.all() {
			if ev.Event == audit.WebhookReceived {
				if ev.Outcome == audit.OutcomeFailure {
					refused++
				} else {
					ok++
				}
				if strings.Contains(ev.Detail, "Secret") || strings.Contains(ev.Detail, "another-secret") {
					t.Errorf("a secret in the audit record: %s", ev.Detail)
				}
			}
		}
		if ok != 2 || refused < 10 {
			t.Errorf("audit: %d accepted, %d refused", ok, refused)
		}

		// The flow's schedule and its next times.
		wf := want(t, e.do("GET", "/api/v1/workflows/hooked", "Bearer "+e.token("admin", "workflows.read admin"), nil), 200, "", "")
		scheds, _ := wf["schedules"].([]any)
		if len(scheds) != 1 {
			t.Fatalf("schedules: %v", wf["schedules"])
		}
		s0 := scheds[0].(map[string]any)
		next, _ := s0["next"].([]any)
		if s0["timezone"] != "Europe/Amsterdam" || len(next) != 5 {
			t.Fatalf("schedule: %v", s0)
		}
		first, err := time.Parse(time.RFC3339Nano, next[0].(string))
		if err != nil {
			t.Fatal(err)
		}
		ams, _ := time.LoadLocation("Europe/Amsterdam")
		if l := first.In(ams); l.Hour() != 6 || l.Minute() != 30 || l.Weekday() == time.Saturday || l.Weekday() == time.Sunday || !first.After(time.Now()) {
			t.Errorf("next time %v (%v in Amsterdam)", first, l)
		}
	})
}
