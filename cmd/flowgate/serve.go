package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/spf13/cobra"

	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/server"
)

func (c *cli) serveCmd() *cobra.Command {
	var o config.Overrides
	cmd := &cobra.Command{
		Use: "serve",
		Example: "  flowgate serve\n" +
			"  flowgate serve --config /etc/flowgate/flowgate.yaml\n" +
			"  flowgate serve --addr :9000 --public-url https://flowgate.example --database postgres://flowgate@db/flowgate",
		Short: "Run the server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.serve(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Addr, "addr", "", "listen address; default $FLOWGATE_ADDR, else :8080")
	cmd.Flags().StringVar(&o.PublicURL, "public-url", "", "public URL, the issuer; default $FLOWGATE_PUBLIC_URL, else http://localhost:8080")
	return cmd
}

// serve runs the server until ctx ends (SIGINT or SIGTERM, see main), then
// drains the requests in flight and stops the parts in order.
func (c *cli) serve(ctx context.Context, o config.Overrides) error {
	cfg, err := c.load(o)
	if err != nil {
		return err
	}
	logger, err := c.logger()
	if err != nil {
		return err
	}
	// zitadel/oidc logs through slog's default logger: make it ours, so its
	// lines share the format and destination of the rest.
	slog.SetDefault(logger)
	// Bind first: a port in use is reported before the database is touched.
	ln, err := server.Listen(cfg.Server.Addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	var metricsLn net.Listener
	if cfg.Server.MetricsAddr != "" {
		if metricsLn, err = server.Listen(cfg.Server.MetricsAddr); err != nil {
			return fmt.Errorf("server.metrics_addr: %w", err)
		}
		defer metricsLn.Close()
	}
	s, err := app.NewServer(ctx, cfg, logger, ln.Addr())
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	if metricsLn != nil {
		s.MetricsOn(ctx, metricsLn)
	}
	if err := c.bootstrapAdmin(ctx, s.App); err != nil {
		return err
	}
	return s.Run(ctx, ln)
}

// bootstrapAdmin creates the user "admin" in a database without users and
// prints its password once, to the terminal, never through the logger.
func (c *cli) bootstrapAdmin(ctx context.Context, a *app.App) error {
	password, err := a.Bootstrap(ctx)
	if err != nil || password == "" {
		return err
	}
	fmt.Fprintf(c.stderr, "\nCreated user \"admin\" with password: %s\nIt is shown only this once. Change it with: flowgate user passwd admin\n\n", password)
	return nil
}
