package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync/atomic"
	"testing"
)

func TestEnabled(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
	} {
		if got := Enabled(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("Enabled(%v) = %v, want %v", tc.env, got, tc.want)
		}
	}
}

func TestOffDoesNothing(t *testing.T) {
	tr, err := New(context.Background(), func(string) string { return "" }, "v1")
	if err != nil || tr != nil {
		t.Fatalf("New without an endpoint = %v, %v", tr, err)
	}
	if rt := tr.Transport(http.DefaultTransport); rt != http.DefaultTransport {
		t.Error("off, Transport wrapped the round tripper")
	}
	if tr.On() || tr.Shutdown(context.Background()) != nil {
		t.Error("off tracing claims to be on or fails to stop")
	}
}

func TestRefusesGRPC(t *testing.T) {
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
	if _, err := New(context.Background(), func(k string) string { return env[k] }, "v1"); err == nil {
		t.Error("grpc accepted")
	}
}

// On, an outbound request carries the traceparent of its client span, and
// Shutdown sends the spans to the collector.
func TestTransportSendsTraceparent(t *testing.T) {
	var exports atomic.Int32
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" {
			exports.Add(1)
		}
	}))
	defer collector.Close()
	var got atomic.Value
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("Traceparent"))
	}))
	defer target.Close()
	// The variables are read by the exporter from the process
	// environment too.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	tr, err := New(context.Background(), func(k string) string {
		if k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
			return collector.URL
		}
		return ""
	}, "v1")
	if err != nil || !tr.On() {
		t.Fatalf("New = %v, %v", tr, err)
	}
	client := &http.Client{Transport: tr.Transport(http.DefaultTransport)}
	req, _ := http.NewRequest(http.MethodGet, target.URL+"/x?key=secret", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.Header.Get("Traceparent") != "" {
		t.Error("the caller's request was changed")
	}
	tp, _ := got.Load().(string)
	if !regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`).MatchString(tp) {
		t.Errorf("traceparent = %q", tp)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if exports.Load() == 0 {
		t.Error("no export reached the collector")
	}
}
