package main

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/flowgate/flowgate/internal/metrics"
	"github.com/flowgate/flowgate/internal/testutil/prereq"
)

// otlpSink is a tiny OTLP/HTTP receiver: it decodes every export the
// server sends to /v1/traces and keeps the spans.
type otlpSink struct {
	mu    sync.Mutex
	spans []*tracev1.Span
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST /v1/traces application/x-protobuf", http.StatusBadRequest)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(data, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			s.spans = append(s.spans, ss.Spans...)
		}
	}
	s.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// find waits for a span that match accepts.
func (s *otlpSink) find(t *testing.T, what string, match func(*tracev1.Span) bool) *tracev1.Span {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for _, sp := range s.spans {
			if match(sp) {
				s.mu.Unlock()
				return sp
			}
		}
		s.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for _, sp := range s.spans {
		names = append(names, sp.Name)
	}
	t.Fatalf("no %s among the exported spans %v", what, names)
	return nil
}

func attr(sp *tracev1.Span, key string) *commonv1.AnyValue {
	for _, kv := range sp.Attributes {
		if kv.Key == key {
			return kv.Value
		}
	}
	return nil
}

const tracedFlow = `name: traced
permissions: {start: ["client:robot"]}
input:
  url: {type: string, required: true}
steps:
  - id: call
    type: http
    url: "${{ input.url }}"
  - id: done
    type: return
    body: {status: "${{ steps.call.output.status }}"}
`

// A request that starts an instance running an http step: its span, the
// step's and the outbound call's reach an OTLP receiver in one trace, the
// call carries that trace's traceparent to its target, and the metrics on
// the separate metrics address count the run and pass promtool.
func TestMetricsAndTraces(t *testing.T) {
	sink := &otlpSink{}
	collector := httptest.NewServer(sink)
	defer collector.Close()

	var mu sync.Mutex
	var traceparents []string
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		traceparents = append(traceparents, r.Header.Get("Traceparent"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer target.Close()

	dir := t.TempDir()
	args := flowsHome(t, dir, map[string]string{"traced": tracedFlow})
	metricsAddr := freeAddr(t)
	// server.metrics_addr through the file: append it to the generated
	// configuration.
	cfgFile := args[1]
	appendFile(t, cfgFile, "server:\n  metrics_addr: \""+metricsAddr+"\"\n")

	env := []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + collector.URL,
		"OTEL_BSP_SCHEDULE_DELAY=100", // export within 0.1 s rather than 5 s
		"OTEL_SERVICE_NAME=flowgate-test",
	}
	s := startServe(t, dir, env, args...)
	token := robotToken(t, s.base)

	const requestID = "trace-me-0001"
	req, err := http.NewRequest(http.MethodPost, s.base+"/api/v1/workflows/traced/instances",
		strings.NewReader(`{"url": "`+target.URL+`/hello"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", requestID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var started struct{ ID string }
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	if m := regexp.MustCompile(`"id":"([^"]+)"`).FindSubmatch(body); m != nil {
		started.ID = string(m[1])
	}
	if inst := waitInstance(t, s.base, token, started.ID, 20*time.Second, "completed", "failed"); inst["status"] != "completed" {
		t.Fatalf("instance: %v", inst)
	}

	// The target got a W3C traceparent: version 00, trace id, parent span
	// id, sampled.
	mu.Lock()
	got := append([]string(nil), traceparents...)
	mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("target saw %d requests", len(got))
	}
	tp := regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-01$`).FindStringSubmatch(got[0])
	if tp == nil {
		t.Fatalf("traceparent = %q", got[0])
	}
	traceID, parentID := tp[1], tp[2]

	server := sink.find(t, "server span with the request id", func(sp *tracev1.Span) bool {
		v := attr(sp, "flowgate.request_id")
		return sp.Kind == tracev1.Span_SPAN_KIND_SERVER && v != nil && v.GetStringValue() == requestID
	})
	if server.Name != "POST /api/v1/workflows/{name}/instances" || hex.EncodeToString(server.TraceId) != traceID {
		t.Errorf("server span %q in trace %x, want the route pattern in trace %s", server.Name, server.TraceId, traceID)
	}
	step := sink.find(t, "http step span", func(sp *tracev1.Span) bool {
		v := attr(sp, "flowgate.step")
		return sp.Name == "step http" && v != nil && v.GetStringValue() == "call"
	})
	if hex.EncodeToString(step.TraceId) != traceID || !bytes.Equal(step.ParentSpanId, server.SpanId) {
		t.Errorf("step span: trace %x parent %x; want trace %s under the request's span %x", step.TraceId, step.ParentSpanId, traceID, server.SpanId)
	}
	if v := attr(step, "flowgate.instance"); v == nil || v.GetStringValue() != started.ID {
		t.Errorf("step span instance = %v", v)
	}
	client := sink.find(t, "client span of the call", func(sp *tracev1.Span) bool {
		return sp.Kind == tracev1.Span_SPAN_KIND_CLIENT && hex.EncodeToString(sp.SpanId) == parentID
	})
	if !bytes.Equal(client.ParentSpanId, step.SpanId) || hex.EncodeToString(client.TraceId) != traceID {
		t.Errorf("client span parent %x, want the step's %x", client.ParentSpanId, step.SpanId)
	}
	if v := attr(client, "http.response.status_code"); v == nil || v.GetIntValue() != 200 {
		t.Errorf("client span status = %v", v)
	}

	// /metrics is on its own address now, not on the main one.
	if code, _ := getJSON(t, s.base+"/metrics"); code != http.StatusNotFound {
		t.Errorf("main address /metrics = %d, want 404", code)
	}
	mresp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{
		`flowgate_instances_started_total{flow="traced"} 1`,
		`flowgate_instances_finished_total{flow="traced",status="completed"} 1`,
		`flowgate_steps_total{outcome="completed",type="http"} 1`,
		`flowgate_steps_total{outcome="completed",type="return"} 1`,
		`flowgate_step_duration_seconds_count{type="http"} 1`,
		`flowgate_tasks_open 0`,
		`flowgate_build_info{commit=`,
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	issued := regexp.MustCompile(`flowgate_tokens_issued_total\{grant_type="client_credentials"\} (\d+)`).FindSubmatch(text)
	if n, _ := strconv.Atoi(string(issuedOr(issued))); n < 1 {
		t.Errorf("tokens issued by client_credentials not counted")
	}

	// Every series the Grafana dashboard queries is one Flowgate exports:
	// here after this run, or (counters not moved yet have no series) one
	// the metrics package registers.
	exported := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) `).FindAllSubmatch(text, -1) {
		exported[string(m[1])] = true
	}
	reg := prometheus.NewRegistry()
	metrics.New(reg)
	descs := make(chan *prometheus.Desc, 64)
	go func() { reg.Describe(descs); close(descs) }()
	for d := range descs {
		if m := regexp.MustCompile(`fqName: "([^"]+)"`).FindStringSubmatch(d.String()); m != nil {
			exported[m[1]] = true
		}
	}
	dashboard, err := os.ReadFile("../../deploy/grafana/flowgate-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`flowgate_[a-z_]+`).FindAllString(string(dashboard), -1) {
		base := regexp.MustCompile(`_(bucket|count|sum)$`).ReplaceAllString(name, "")
		if !exported[name] && !exported[base] {
			t.Errorf("the dashboard queries %s, which Flowgate does not export", name)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		prereq.Missing(t, "promtool not found: apt-get install prometheus (it provides promtool)")
	}
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = bytes.NewReader(text)
	if out, err := check.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	if s.stop(t) != 0 {
		t.Error("serve did not stop cleanly")
	}
}

func issuedOr(m [][]byte) []byte {
	if m == nil {
		return nil
	}
	return m[1]
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(data, text...), 0o600); err != nil {
		t.Fatal(err)
	}
}
