// Package server assembles Flowgate's HTTP server: the routes of every part,
// the middleware every request passes (request id, access log, metrics,
// panic recovery), the health endpoints, and a graceful shutdown.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flowgate/flowgate/internal/buildinfo"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/tracing"
)

// Server is Flowgate's HTTP server.
type Server struct {
	mux      *http.ServeMux
	logger   *slog.Logger
	store    store.Store
	registry *prometheus.Registry
	metrics  *httpMetrics
	checks   []ReadinessCheck
	http     *http.Server

	tracing        *tracing.Tracing
	metricsHandler http.Handler
	// metricsElsewhere is set by ServeMetrics before serving starts.
	metricsElsewhere bool
	cors             *CORS
	proxies          *Proxies
	tls              *tls.Config
}

// ReadinessCheck is one thing /readyz reports on. A check that fails with
// Required set makes /readyz answer 503; others are reported only.
type ReadinessCheck struct {
	Name     string
	Required bool
	Check    func(ctx context.Context) error
}

// New makes a server over st. Parts add their routes with Handle before
// Serve is called.
func New(st store.Store, logger *slog.Logger) *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newPoolCollector(st),
		buildinfo.Read().Collector(),
	)
	s := &Server{
		mux:      http.NewServeMux(),
		logger:   logger,
		store:    st,
		registry: reg,
		metrics:  newHTTPMetrics(reg),
	}
	s.checks = append(s.checks, ReadinessCheck{Name: "database", Required: true, Check: st.Ping})
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.metricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	s.mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.metricsElsewhere {
			http.NotFound(w, r)
			return
		}
		s.metricsHandler.ServeHTTP(w, r)
	})
	return s
}

// ServeMetricsOn serves /metrics on ln, and from then on not on the main
// address, until ctx is done: the metrics need not be reachable where the
// server's users are. Call it before Serve; it returns at once, and logs
// a failure of that listener.
func (s *Server) ServeMetricsOn(ctx context.Context, ln net.Listener) {
	s.metricsElsewhere = true
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metricsHandler)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn)}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("metrics listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
}

// SetTracing makes every request a span (docs/operations.md); nil is off.
// Call it before Serve.
func (s *Server) SetTracing(t *tracing.Tracing) { s.tracing = t }

// Registry is where parts register their own metrics.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// Handle registers a route with the standard library's pattern syntax.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Mux is the router, for parts that register their own routes.
func (s *Server) Mux() *http.ServeMux { return s.mux }

// AddReadinessCheck adds something /readyz reports on.
func (s *Server) AddReadinessCheck(c ReadinessCheck) { s.checks = append(s.checks, c) }

// Handler is the whole server with its middleware, for tests and for
// Serve.
func (s *Server) Handler() http.Handler {
	return s.observe(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cors.handle(w, r) {
			return
		}
		s.mux.ServeHTTP(w, r)
	}))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	status := http.StatusOK
	details := map[string]string{}
	for _, c := range s.checks {
		if err := c.Check(ctx); err != nil {
			details[c.Name] = err.Error()
			if c.Required {
				status = http.StatusServiceUnavailable
			}
			continue
		}
		details[c.Name] = "ok"
	}
	overall := "ok"
	if status != http.StatusOK {
		overall = "unavailable"
	}
	writeJSON(w, status, map[string]any{"status": overall, "checks": details})
}

// Listen binds the address now, so that a port in use is reported before
// anything else starts.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves on ln until ctx is done, then stops accepting and waits up
// to drain for requests in flight.
func (s *Server) Serve(ctx context.Context, ln net.Listener, drain time.Duration) error {
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		// Long enough for an invoked flow's 30 s synchronous window.
		WriteTimeout:   90 * time.Second,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
		BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		TLSConfig:      s.tls,
	}
	errc := make(chan error, 1)
	go func() {
		if s.tls != nil {
			errc <- s.http.ServeTLS(ln, "", "")
			return
		}
		errc <- s.http.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.logger.Info("shutting down", "drain", drain.String())
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := s.http.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// observe gives every request an id, logs it, measures it, and turns a
// panic into a 500 instead of a dropped connection.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// First, so that the log line, the audit log and the sign-in
		// throttle all see the client's address.
		r = s.proxies.forwarded(r)
		if r.TLS == nil && IsHTTPS(r) {
			w = &secureCookies{ResponseWriter: w}
		}
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		// The request as the handlers see it, with its span; the mux sets
		// the route pattern on this one, which the deferred code reads.
		ctx, span := s.tracing.StartServer(r, id)
		r = r.WithContext(ctx)
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.logger.Error("panic serving request", "request_id", id, "panic", fmt.Sprint(p))
				if !rec.wrote {
					writeJSON(rec, http.StatusInternalServerError, map[string]string{"error": "server_error", "error_description": "internal error, request id " + id})
				}
			}
			// r.Pattern is set by the mux on this same request; using the
			// pattern rather than the path keeps label cardinality bounded.
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			elapsed := time.Since(start)
			s.metrics.observe(route, r.Method, rec.status, elapsed)
			tracing.EndServer(span, r.Pattern, rec.status)
			// The path only: query strings can carry codes and tokens.
			// Straight to the handler: Logger.LogAttrs would also walk the
			// stack for a source location this line does not need.
			ctx := r.Context()
			if h := s.logger.Handler(); h.Enabled(ctx, slog.LevelInfo) {
				line := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
				line.AddAttrs(
					slog.String("request_id", id), slog.String("method", r.Method),
					slog.String("path", r.URL.Path), slog.String("route", route),
					slog.Int("status", rec.status), slog.Int64("bytes", rec.bytes),
					slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
					slog.String("remote", r.RemoteAddr))
				if sc := span.SpanContext(); sc.IsValid() {
					// The request id and the trace find each other.
					line.AddAttrs(slog.String("trace_id", sc.TraceID().String()))
				}
				_ = h.Handle(ctx, line)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (flush,
// deadlines).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowgate_http_requests_total",
			Help: "HTTP requests served, by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flowgate_http_request_duration_seconds",
			Help:    "Time to serve HTTP requests, by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *httpMetrics) observe(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route, method).Observe(d.Seconds())
}

// poolCollector reads the store's pool statistics at scrape time.
type poolCollector struct {
	st                                    store.Store
	maxOpen, open, inUse, idle, waits, wt *prometheus.Desc
}

func newPoolCollector(st store.Store) *poolCollector {
	l := []string{"backend"}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("flowgate_db_pool_"+name, help, l, nil)
	}
	return &poolCollector{st: st,
		maxOpen: d("max_open_connections", "Maximum open connections to the database."),
		open:    d("open_connections", "Open connections to the database."),
		inUse:   d("in_use_connections", "Connections in use."),
		idle:    d("idle_connections", "Idle connections."),
		waits:   d("wait_count_total", "Times a caller waited for a connection."),
		wt:      d("wait_seconds_total", "Time spent waiting for a connection."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.maxOpen, c.open, c.inUse, c.idle, c.waits, c.wt} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s, b := c.st.Stats(), c.st.Backend()
	ch <- prometheus.MustNewConstMetric(c.maxOpen, prometheus.GaugeValue, float64(s.MaxOpen), b)
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(s.Open), b)
	ch <- prometheus.MustNewConstMetric(c.inUse, prometheus.GaugeValue, float64(s.InUse), b)
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(s.Idle), b)
	ch <- prometheus.MustNewConstMetric(c.waits, prometheus.CounterValue, float64(s.WaitCount), b)
	ch <- prometheus.MustNewConstMetric(c.wt, prometheus.CounterValue, s.WaitDuration.Seconds(), b)
}
