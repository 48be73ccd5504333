// Package metrics holds Flowgate's Prometheus metrics beyond HTTP: the flow
// engine (instances, steps, wakes, tasks), the token vault and the tokens
// the authorization server issues. One *Metrics is made per server on the
// server's registry and handed to the parts that count; every method is
// safe on a nil *Metrics, which counts nothing (commands, tests).
//
// Names follow the Prometheus conventions (docs/operations.md lists them):
// flowgate_ prefix, _total for counters, base units (_seconds).
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the counters and histograms the parts update.
type Metrics struct {
	instancesStarted  *prometheus.CounterVec
	instancesFinished *prometheus.CounterVec
	steps             *prometheus.CounterVec
	stepDuration      *prometheus.HistogramVec
	wakeLag           prometheus.Histogram
	tasksCreated      *prometheus.CounterVec
	vaultRefreshes    *prometheus.CounterVec
	tokensIssued      *prometheus.CounterVec
}

// New makes the metrics and registers them with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		instancesStarted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowgate_instances_started_total",
			Help: "Flow instances started on this server, by flow.",
		}, []string{"flow"}),
		instancesFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowgate_instances_finished_total",
			Help: "Flow instances that ended on this server, by flow and final status (completed, failed, cancelled).",
		}, []string{"flow", "status"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowgate_steps_total",
			Help: "Step attempts that ended on this server, by step type and outcome (the step record's status).",
		}, []string{"type", "outcome"}),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "flowgate_step_duration_seconds",
			Help: "Time from a step attempt's start to its end, by step type (waits and tasks include the time parked).",
			// From a set step's microseconds to an http step's retries
			// and a task's days.
			Buckets: []float64{.001, .005, .025, .1, .25, 1, 2.5, 10, 30, 120, 600, 3600, 86400},
		}, []string{"type"}),
		wakeLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "flowgate_engine_wake_lag_seconds",
			Help:    "How late a queued wake (a wait's deadline, an http retry) was picked up after it was due.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		tasksCreated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowgate_tasks_created_total",
			Help: "Tasks put on worklists by this server, by flow.",
		}, []string{"flow"}),
		vaultRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowgate_vault_refreshes_total",
			Help: "Refreshes of stored user tokens at OAuth servers, by server and outcome (success, failure, reconnect_required).",
		}, []string{"server", "outcome"}),
		tokensIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowgate_tokens_issued_total",
			Help: "Access tokens issued by the authorization server, by grant type.",
		}, []string{"grant_type"}),
	}
	reg.MustRegister(m.instancesStarted, m.instancesFinished, m.steps, m.stepDuration, m.wakeLag,
		m.tasksCreated, m.vaultRefreshes, m.tokensIssued)
	return m
}

// InstanceStarted counts a new instance of flow.
func (m *Metrics) InstanceStarted(flow string) {
	if m != nil {
		m.instancesStarted.WithLabelValues(flow).Inc()
	}
}

// InstanceFinished counts an instance of flow that ended with status.
func (m *Metrics) InstanceFinished(flow, status string) {
	if m != nil {
		m.instancesFinished.WithLabelValues(flow, status).Inc()
	}
}

// StepEnded counts a step attempt of stepType that ended with outcome and
// observes how long it took.
func (m *Metrics) StepEnded(stepType, outcome string, d time.Duration) {
	if m != nil {
		m.steps.WithLabelValues(stepType, outcome).Inc()
		m.stepDuration.WithLabelValues(stepType).Observe(max(d, 0).Seconds())
	}
}

// WakeLag observes how late a wake due at due was picked up at now.
func (m *Metrics) WakeLag(due, now time.Time) {
	if m != nil && !due.IsZero() {
		m.wakeLag.Observe(max(now.Sub(due), 0).Seconds())
	}
}

// TasksCreated counts n tasks of flow.
func (m *Metrics) TasksCreated(flow string, n int) {
	if m != nil && n > 0 {
		m.tasksCreated.WithLabelValues(flow).Add(float64(n))
	}
}

// VaultRefresh counts a refresh at server with its outcome.
func (m *Metrics) VaultRefresh(server, outcome string) {
	if m != nil {
		m.vaultRefreshes.WithLabelValues(server, outcome).Inc()
	}
}

// TokenIssued counts an access token issued through grantType.
func (m *Metrics) TokenIssued(grantType string) {
	if m != nil {
		m.tokensIssued.WithLabelValues(grantType).Inc()
	}
}

// Gauge is a value read when /metrics is scraped.
type Gauge struct {
	desc *prometheus.Desc
	read func(context.Context) (float64, error)
}

// NewGauge makes a gauge read by read at every scrape (with a few seconds
// to answer); a read that fails leaves the gauge out of that scrape
// rather than failing the whole scrape.
func NewGauge(name, help string, read func(context.Context) (float64, error)) *Gauge {
	return &Gauge{desc: prometheus.NewDesc(name, help, nil, nil), read: read}
}

// Describe implements prometheus.Collector.
func (g *Gauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect implements prometheus.Collector.
func (g *Gauge) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	v, err := g.read(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v)
}
