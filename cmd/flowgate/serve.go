package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/server"
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
			// Bind first: a port in use is reported before the database
			// is touched.
			ln, err := server.Listen(cfg.Server.Addr)
			if err != nil {
				return err
			}
			defer ln.Close()
			a, err := app.Open(ctx, cfg, logger)
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
