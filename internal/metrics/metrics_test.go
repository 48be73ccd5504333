package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.InstanceStarted("expense")
	m.InstanceFinished("expense", "failed")
	m.StepEnded("http", "completed", 300*time.Millisecond)
	m.StepEnded("set", "completed", -time.Second) // a clock step backwards counts as 0
	now := time.Now()
	m.WakeLag(now.Add(-2*time.Second), now)
	m.WakeLag(time.Time{}, now) // a takeover job has no due time: not observed
	m.TasksCreated("expense", 2)
	m.VaultRefresh("graph", "reconnect_required")
	m.TokenIssued("client_credentials")
	text := scrape(t, reg)
	for _, want := range []string{
		`flowgate_instances_started_total{flow="expense"} 1`,
		`flowgate_instances_finished_total{flow="expense",status="failed"} 1`,
		`flowgate_steps_total{outcome="completed",type="http"} 1`,
		`flowgate_step_duration_seconds_sum{type="set"} 0`,
		`flowgate_engine_wake_lag_seconds_count 1`,
		`flowgate_engine_wake_lag_seconds_sum 2`,
		`flowgate_tasks_created_total{flow="expense"} 2`,
		`flowgate_vault_refreshes_total{outcome="reconnect_required",server="graph"} 1`,
		`flowgate_tokens_issued_total{grant_type="client_credentials"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %s in\n%s", want, text)
		}
	}
}

func TestNilCountsNothing(t *testing.T) {
	var m *Metrics
	m.InstanceStarted("x")
	m.InstanceFinished("x", "completed")
	m.StepEnded("http", "completed", time.Second)
	m.WakeLag(time.Now(), time.Now())
	m.TasksCreated("x", 1)
	m.VaultRefresh("s", "success")
	m.TokenIssued("refresh_token")
}

func TestGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	fail := false
	reg.MustRegister(NewGauge("flowgate_test_open", "Open things.", func(context.Context) (float64, error) {
		if fail {
			return 0, errors.New("database down")
		}
		return 7, nil
	}))
	if text := scrape(t, reg); !strings.Contains(text, "flowgate_test_open 7") {
		t.Errorf("gauge: %s", text)
	}
	// A failed read leaves the gauge out instead of failing the scrape.
	fail = true
	if text := scrape(t, reg); strings.Contains(text, "flowgate_test_open") {
		t.Errorf("failed gauge still reported: %s", text)
	}
}
