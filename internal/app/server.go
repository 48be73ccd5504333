package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"time"

	"github.com/flowgate/flowgate/internal/admin"
	"github.com/flowgate/flowgate/internal/api"
	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/authserver"
	"github.com/flowgate/flowgate/internal/buildinfo"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/egress"
	"github.com/flowgate/flowgate/internal/federation"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/metrics"
	"github.com/flowgate/flowgate/internal/notify"
	"github.com/flowgate/flowgate/internal/odata"
	"github.com/flowgate/flowgate/internal/resource"
	"github.com/flowgate/flowgate/internal/scim"
	"github.com/flowgate/flowgate/internal/server"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/throttle"
	"github.com/flowgate/flowgate/internal/tracing"
	"github.com/flowgate/flowgate/internal/vault"
	"github.com/flowgate/flowgate/internal/web"
)

// drainTimeout bounds how long a stop waits for requests in flight, below
// the usual 30 s a service manager waits before SIGKILL.
const drainTimeout = 25 * time.Second

// closeTimeout bounds how long each part may take to stop once the HTTP
// server has drained.
const closeTimeout = 10 * time.Second

// Server is `flowgate serve` assembled: the store and key ring of App, and
// every part that answers requests or runs flows, wired to one another.
// NewServer builds it, Run serves, Close stops the parts in order.
type Server struct {
	*App
	http      *server.Server
	auth      *authserver.Server
	validator *resource.Validator
	issuers   *issuerLoader
	// federation is nil when no identity provider is configured.
	federation *federation.Service
	engine     *engine.Engine
	api        *api.API
	tracing    *tracing.Tracing
	// mail delivers the outbox; nil while notifications.smtp.host is
	// empty.
	mail *notify.Sender
}

// NewServer opens (creating if need be) the configured database and builds
// the server's parts on it, then applies the configuration's declared
// objects (ApplyDeclared). listen is the address the caller bound: outbound
// connections made for flows are kept away from it. On error, whatever was
// built is closed again.
func NewServer(ctx context.Context, cfg *config.Config, logger *slog.Logger, listen net.Addr) (*Server, error) {
	// Every outbound connection (http steps, issuers, OAuth servers,
	// clients' jwks_uri) dials through one policy.
	policy, err := egress.New(cfg.Egress.Allow, cfg.Egress.Deny, listen)
	if err != nil {
		return nil, err
	}
	a, err := OpenOrCreate(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	s := &Server{App: a, http: server.New(a.Store, logger)}
	if err := s.build(ctx, policy); err != nil {
		return nil, errors.Join(err, s.Close(ctx))
	}
	if err := s.ApplyDeclared(ctx); err != nil {
		return nil, errors.Join(err, s.Close(ctx))
	}
	return s, nil
}

// build makes the parts and registers their routes. Nothing is served
// until Run, so the declared configuration applied after it is in place
// before the first request.
func (s *Server) build(ctx context.Context, policy *egress.Policy) error {
	cfg, logger := s.Config, s.Logger
	proxies, err := server.ParseProxies(cfg.Server.TrustedProxies)
	if err != nil {
		return err
	}
	s.http.SetTrustedProxies(proxies)
	if t := cfg.Server.TLS; t.Enabled() {
		if err := s.http.SetTLS(t.CertFile, t.KeyFile); err != nil {
			return err
		}
	}
	s.Audit = s.newAuditWriter()
	if len(cfg.IdentityProviders) > 0 {
		s.federation, err = federation.New(ctx, federation.Options{Providers: cfg.IdentityProviders, PublicURL: cfg.Server.PublicURL,
			Store: s.Store, HTTPClient: policy.Client(10 * time.Second), Auditor: s.Audit, Logger: logger})
		if err != nil {
			return err
		}
	}
	// Traces go out only when the standard OTEL_ variables name an
	// endpoint; the exporter reads the rest of them itself.
	if s.tracing, err = tracing.New(ctx, os.Getenv, buildinfo.Read().Version); err != nil {
		return err
	}
	if s.tracing.On() {
		logger.Info("sending traces over OTLP/HTTP")
	}
	s.http.SetTracing(s.tracing)
	counts := metrics.New(s.http.Registry())
	st := s.Store
	s.http.Registry().MustRegister(metrics.NewGauge("flowgate_tasks_open",
		"Tasks open on worklists, in the whole database (every server reports the same value).",
		func(ctx context.Context) (float64, error) {
			n, err := st.CountTasks(ctx, store.TaskOpen)
			return float64(n), err
		}))
	s.auth, err = authserver.New(ctx, authserver.Options{
		Issuer: cfg.Server.PublicURL, Store: s.Store, Ring: s.Ring, Hasher: s.Hasher,
		Auth: cfg.Auth, Logger: logger, Auditor: s.Audit, HTTPClient: policy.Client(10 * time.Second),
		Federation: s.federation, Metrics: counts,
	})
	if err != nil {
		return err
	}
	if s.validator, err = s.newValidator(ctx, policy); err != nil {
		return err
	}
	s.issuers = &issuerLoader{st: s.Store, v: s.validator, logger: logger}
	tokens := vault.New(s.Store, vault.Options{Logger: logger, HTTPClient: policy.Client(30 * time.Second), Metrics: counts})
	var mailCfg *engine.MailConfig
	if cfg.Notifications.SMTP.Host != "" {
		mailCfg = &engine.MailConfig{TaskNotices: cfg.Notifications.TaskAssigned}
	}
	s.engine, err = s.NewEngine(ctx, engine.Config{Logger: logger, Vault: tokens, PublicURL: cfg.Server.PublicURL,
		Egress: policy, MaxSteps: cfg.Limits.MaxSteps, MaxVars: cfg.Limits.MaxVars, Metrics: counts, Tracing: s.tracing, Mail: mailCfg})
	if err != nil {
		return err
	}
	if mailCfg != nil {
		s.mail = notify.Start(ctx, notify.Options{Store: s.Store, SMTP: cfg.Notifications.SMTP,
			PublicURL: cfg.Server.PublicURL, Logger: logger})
	}
	s.api = api.New(api.Options{Store: s.Store, Hasher: s.Hasher, Ring: s.Ring, Validator: s.validator, Logger: logger,
		PublicURL: cfg.Server.PublicURL, Auditor: s.Audit, Engine: s.engine, Vault: tokens,
		ShowDetailedErrors: cfg.Auth.ShowDetailedErrors, HTTPClient: policy.Client(10 * time.Second)})
	s.auth.Register(s.http.Mux())
	s.http.SetCORS(server.CORS{Paths: authserver.CORSPaths(), Prefixes: []string{"/api/v1/"}, Allowed: s.auth.AllowedOrigin})
	s.api.Register(s.http.Mux())
	pages, err := web.New(web.Options{Sessions: s.auth, Engine: s.engine, Vault: tokens, States: s.Store, Users: s.Store, Logger: logger,
		Operations: web.Operations{Flows: s.engine, Store: s.Store, Switches: s.api, RotateKey: s.rotateKey},
		Identity: &web.IdentityOptions{Store: s.Store, MFA: s.auth.MFA(), Changes: &admin.Service{Store: s.Store, Ring: s.Ring, Audit: s.Audit},
			Audit: s.Audit, Hasher: s.Hasher, HTTPClient: policy.Client(10 * time.Second), PublicURL: cfg.Server.PublicURL},
		Federation: s.federation,
		Portal: web.PortalOptions{Engine: s.engine, Connections: tokens, Accounts: s.Store, Hasher: s.Hasher, Audit: s.Audit,
			SignIns: throttle.New(s.Store, throttle.Options{}), MFA: s.auth.MFA()}})
	if err != nil {
		return err
	}
	odata.New(odata.Options{Store: s.Store, Engine: s.engine, Validator: s.validator, PublicURL: cfg.Server.PublicURL,
		Enabled: func(ctx context.Context) bool { return s.api.SwitchOn(ctx, api.SwitchOData) },
		Logger:  logger, Registerer: s.http.Registry(), AuthorizationURI: odata.EntraAuthorizationURI(issuerURLs(cfg))}).Register(s.http.Mux())
	scim.New(scim.Options{Store: s.Store, Validator: s.validator, Auditor: s.Audit, PublicURL: cfg.Server.PublicURL,
		Enabled: func(ctx context.Context) bool { return s.api.SwitchOn(ctx, api.SwitchSCIM) },
		Logger:  logger, Registerer: s.http.Registry()}).Register(s.http.Mux())
	pages.Register(s.http.Mux())
	registerLoadTestRoutes(s.http, s.validator)
	return nil
}

// rotateKey is App.RotateKey, then the new key loaded at once, so this
// server signs with it and publishes it before the page says it is done
// (other servers load it within their reload interval).
func (s *Server) rotateKey(ctx context.Context, by string, idToken bool) (store.SigningKey, error) {
	k, err := s.RotateKey(ctx, by, idToken)
	if err != nil {
		return store.SigningKey{}, err
	}
	if err := s.auth.Keys().Reload(ctx); err != nil {
		return store.SigningKey{}, err
	}
	return k, nil
}

// newAuditWriter makes the audit writer, its metrics on the server's
// registry. While audit events cannot be written, sign-ins and token
// requests are refused, so /readyz fails: the load balancer should send
// them to a server whose database takes writes.
func (s *Server) newAuditWriter() *audit.Writer {
	w := audit.NewWriter(s.Store, s.Logger, audit.Options{Disabled: !s.Config.Auth.AuditLog, Registerer: s.http.Registry()})
	s.http.AddReadinessCheck(server.ReadinessCheck{Name: "audit", Required: true,
		Check: func(context.Context) error { return w.Healthy() }})
	return w
}

// Run serves on ln until ctx is done, then drains the requests in flight
// (up to 25 s). The background work of a server (reloading trusted
// issuers, pruning expired rows) runs as long as ctx. Call Close after.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	go every(ctx, issuerReloadInterval, func(time.Time) { s.issuers.reload(ctx) })
	go every(ctx, pruneInterval, func(now time.Time) { s.pruneOnce(ctx, now.UTC()) })
	// Start-up ran argon2id (the decoy hash, a bootstrap password,
	// declared users): 19 MiB each that the runtime would keep for a
	// long while. Give it back before serving.
	debug.FreeOSMemory()
	s.Logger.Info("flowgate serving", "addr", ln.Addr().String(), "public_url", s.Config.Server.PublicURL, "database", s.Store.Backend())
	if err := s.http.Serve(ctx, ln, drainTimeout); err != nil {
		return err
	}
	s.Logger.Info("flowgate stopped")
	return nil
}

// MetricsOn serves /metrics on ln instead of the main address
// (server.metrics_addr), until ctx is done. Call it before Run.
func (s *Server) MetricsOn(ctx context.Context, ln net.Listener) {
	s.http.ServeMetricsOn(ctx, ln)
}

// every calls fn at each tick of interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			fn(now)
		}
	}
}

// Close stops the parts once the HTTP server has drained: first the
// engine, whose runs reach their next durable point and release what they
// hold (so another server takes over without waiting for a lease to run
// out), then the audit writer, which writes the last requests' events,
// then the store. The engine's and the audit writer's problems are logged
// (the server stops anyway); the error is the store's.
func (s *Server) Close(ctx context.Context) error {
	if s.engine != nil {
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		if err := s.engine.Close(ectx); err != nil {
			s.Logger.Error("flow engine did not stop cleanly", "err", err)
		}
	}
	if s.mail != nil {
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		if err := s.mail.Close(mctx); err != nil {
			s.Logger.Error("mail sender did not stop cleanly", "err", err)
		}
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	if err := s.Audit.Close(actx); err != nil {
		s.Logger.Error("audit log not fully written", "err", err)
	}
	// After the engine, so the spans of its last steps go out too.
	if err := s.tracing.Shutdown(actx); err != nil {
		s.Logger.Warn("traces not all sent", "err", err)
	}
	return s.Store.Close()
}

// issuerURLs lists the configured trusted issuers' URLs.
func issuerURLs(cfg *config.Config) []string {
	out := make([]string, len(cfg.TrustedIssuers))
	for i, ti := range cfg.TrustedIssuers {
		out[i] = ti.Issuer
	}
	return out
}
