package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowgate/flowgate/internal/api"
	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/authserver"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/egress"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/server"
	"github.com/flowgate/flowgate/internal/vault"
	"github.com/flowgate/flowgate/internal/web"
)

// drainTimeout bounds how long SIGTERM waits for requests in flight, below
// the usual 30 s a service manager waits before SIGKILL.
const drainTimeout = 25 * time.Second

func (c *cli) serveCmd() *cobra.Command {
	var o config.Overrides
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := c.load(o)
			if err != nil {
				return err
			}
			logger, err := c.logger()
			if err != nil {
				return err
			}
			// zitadel/oidc logs through slog's default logger: make it ours,
			// so its lines share the format and destination of the rest.
			slog.SetDefault(logger)
			// Bind first: a port in use is reported before the database
			// is touched.
			ln, err := server.Listen(cfg.Server.Addr)
			if err != nil {
				return err
			}
			defer ln.Close()
			// Every outbound connection (http steps, issuers, OAuth
			// servers, clients' jwks_uri) dials through one policy, which
			// also keeps flows away from this server's own address.
			policy, err := egress.New(cfg.Egress.Allow, cfg.Egress.Deny, ln.Addr())
			if err != nil {
				return err
			}
			a, err := app.OpenOrCreate(ctx, cfg, logger)
			if err != nil {
				return err
			}
			defer a.Close()
			if err := a.ApplyDeclared(ctx); err != nil {
				return err
			}
			password, err := a.Bootstrap(ctx)
			if err != nil {
				return err
			}
			if password != "" {
				// Printed once, to the terminal, never through the logger.
				fmt.Fprintf(c.stderr, "\nCreated user \"admin\" with password: %s\nIt is shown only this once. Change it with: flowgate user passwd admin\n\n", password)
			}
			srv := server.New(a.Store, logger)
			auditor := audit.NewWriter(a.Store, logger, audit.Options{Disabled: !cfg.Auth.AuditLog, Registerer: srv.Registry()})
			// While audit events cannot be written, sign-ins and token
			// requests are refused; the load balancer should send them
			// to a server whose database takes writes.
			srv.AddReadinessCheck(server.ReadinessCheck{Name: "audit", Required: true,
				Check: func(context.Context) error { return auditor.Healthy() }})
			// Flushed after the server drained, so the last requests' events
			// are written before the process exits.
			defer func() {
				fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer cancel()
				if err := auditor.Close(fctx); err != nil {
					logger.Error("audit log not fully written", "err", err)
				}
			}()
			as, err := authserver.New(ctx, authserver.Options{
				Issuer: cfg.Server.PublicURL, Store: a.Store, Ring: a.Ring, Hasher: a.Hasher,
				Auth: cfg.Auth, Logger: logger, Auditor: auditor, HTTPClient: policy.Client(10 * time.Second),
			})
			if err != nil {
				return err
			}
			as.Register(srv.Mux())
			validator, err := newValidator(ctx, a, as, srv, policy, logger)
			if err != nil {
				return err
			}
			tokens := vault.New(a.Store, vault.Options{Logger: logger, HTTPClient: policy.Client(30 * time.Second)})
			queue, err := a.Store.OpenQueue(ctx, logger)
			if err != nil {
				return err
			}
			eng, err := engine.New(ctx, engine.Config{Store: a.Store, Queue: queue, Logger: logger, Vault: tokens, PublicURL: cfg.Server.PublicURL,
				Egress: policy, Audit: auditor, MaxSteps: cfg.Limits.MaxSteps, MaxVars: cfg.Limits.MaxVars})
			if err != nil {
				return err
			}
			// Closed after the server drained and before the audit log:
			// runs reach their next durable point and release what they
			// hold, so another server takes over without waiting for a
			// lease to run out.
			defer func() {
				ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer cancel()
				if err := eng.Close(ectx); err != nil {
					logger.Error("flow engine did not stop cleanly", "err", err)
				}
			}()
			adminAPI := api.New(api.Options{Store: a.Store, Hasher: a.Hasher, Ring: a.Ring, Validator: validator, Logger: logger,
				PublicURL: cfg.Server.PublicURL, Auditor: auditor, Engine: eng, Vault: tokens, ShowDetailedErrors: cfg.Auth.ShowDetailedErrors,
				HTTPClient: policy.Client(10 * time.Second)})
			if err := adminAPI.ApplyDeclared(ctx, cfg); err != nil {
				return err
			}
			// After the declared OAuth servers are in the store: a deploy
			// refuses a flow naming a server that is not.
			if err := deployConfiguredFlows(ctx, eng, cfg, logger); err != nil {
				return err
			}
			if err := adminAPI.SeedSwitches(ctx, cfg.APIs); err != nil {
				return err
			}
			if err := loadTrustedIssuers(ctx, a.Store, validator, logger); err != nil {
				return err
			}
			adminAPI.Register(srv.Mux())
			web.New(web.Options{Sessions: as, Engine: eng, Vault: tokens, States: a.Store, Logger: logger}).Register(srv.Mux())
			registerLoadTestRoutes(srv, validator)
			go pruneExpired(ctx, a, logger)

			// Start-up ran argon2id (the decoy hash, a bootstrap password,
			// declared users): 19 MiB each that the runtime would keep for a
			// long while. Give it back before serving.
			debug.FreeOSMemory()
			logger.Info("flowgate serving", "addr", ln.Addr().String(), "public_url", cfg.Server.PublicURL, "database", a.Store.Backend())
			if err := srv.Serve(ctx, ln, drainTimeout); err != nil {
				return err
			}
			logger.Info("flowgate stopped")
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Addr, "addr", "", "listen address; default $FLOWGATE_ADDR, else :8080")
	cmd.Flags().StringVar(&o.PublicURL, "public-url", "", "public URL, the issuer; default $FLOWGATE_PUBLIC_URL, else http://localhost:8080")
	return cmd
}

// deployConfiguredFlows deploys the flows: file or folder. The default
// ./flows may be missing; a path set explicitly must exist (config checks).
func deployConfiguredFlows(ctx context.Context, eng *engine.Engine, cfg *config.Config, logger *slog.Logger) error {
	if cfg.Flows == "" {
		return nil
	}
	if _, err := os.Stat(cfg.Flows); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	deployed, err := eng.DeployPath(ctx, cfg.Flows, "config")
	if err != nil {
		return fmt.Errorf("flows: %w", err)
	}
	for _, d := range deployed {
		if d.Created {
			logger.Info("flow deployed", "flow", d.Definition.Name, "version", d.Definition.Version, "file", d.File)
		}
	}
	return nil
}

// pruneInterval is how often expired codes, sessions, refresh tokens and
// deny-list entries are deleted. Every server prunes; the deletes are
// idempotent, so several servers on one database do not conflict.
const pruneInterval = 10 * time.Minute

func pruneExpired(ctx context.Context, a *app.App, logger *slog.Logger) {
	t := time.NewTicker(pruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n, err := a.Store.PruneAuth(ctx, now.UTC())
			if err != nil && ctx.Err() == nil {
				logger.Warn("pruning expired authorization data", "err", err)
			} else if n > 0 {
				logger.Debug("pruned expired authorization data", "rows", n)
			}
			// Sign-ins at outbound OAuth servers that were never finished.
			if n, err := a.Store.DeleteExpiredConnectStates(ctx, now.UTC()); err != nil && ctx.Err() == nil {
				logger.Warn("pruning expired connect states", "err", err)
			} else if n > 0 {
				logger.Debug("pruned expired connect states", "rows", n)
			}
			// Failed sign-ins the throttle no longer remembers.
			if n, err := a.Store.DeleteExpiredSignInFailures(ctx, now.UTC()); err != nil && ctx.Err() == nil {
				logger.Warn("pruning expired sign-in failures", "err", err)
			} else if n > 0 {
				logger.Debug("pruned expired sign-in failures", "rows", n)
			}
		}
	}
}
