package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowgate/flowgate/internal/config"
)

// healthCmd asks a running server whether it is up. It is the container
// image's HEALTHCHECK, since the image has no shell and no curl.
func (c *cli) healthCmd() *cobra.Command {
	var url string
	var ready bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Check that a running server answers /healthz (or /readyz); exit 0 if it does, 1 if not",
		Long: "Ask a running Flowgate server whether it is up: GET /healthz (with --ready, /readyz, which also\n" +
			"checks the database) on the address the configuration listens on, or on --url. It reads no database.\n" +
			"It is the container image's HEALTHCHECK, as the image has no shell and no curl.",
		Example: "  flowgate health\n" +
			"  flowgate health --ready\n" +
			"  flowgate health --url http://127.0.0.1:8080",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			base := strings.TrimSuffix(url, "/")
			if base == "" {
				cfg, err := c.load(config.Overrides{})
				if err != nil {
					return err
				}
				base = localURL(cfg.Server.Addr)
			}
			path := "/healthz"
			if ready {
				path = "/readyz"
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
			if err != nil {
				return fmt.Errorf("--url: %w", err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("health: %w", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("health: %s answered %s: %s", base+path, resp.Status, strings.TrimSpace(string(body)))
			}
			fmt.Fprintf(c.stdout, "%s: %s\n", base+path, strings.TrimSpace(string(body)))
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "the server's base URL; default http:// and the listen address (server.addr, FLOWGATE_ADDR)")
	cmd.Flags().BoolVar(&ready, "ready", false, "ask /readyz (database reachable, migrations done) instead of /healthz")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the answer")
	return cmd
}

// localURL turns a listen address into a URL that reaches it from the same
// machine: an empty or wildcard host is the loopback address.
func localURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
