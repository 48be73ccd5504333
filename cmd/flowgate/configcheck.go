package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/flow/engine"
)

func (c *cli) configCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with the configuration", Example: "  flowgate config check --config flowgate.yaml"}
	check := &cobra.Command{
		Use: "check",
		Example: "  flowgate config check --config flowgate.yaml\n" +
			"  FLOWGATE_CONFIG=/etc/flowgate/flowgate.yaml flowgate config check",
		Short: "Validate the configuration and the flows it names; touches nothing",
		Long: "Validate the configuration and the flow definitions its flows: names, as a start would, without\n" +
			"deploying them. Every OAuth server a flow names must be declared in the file or stored in the\n" +
			"database (added through the admin API); the database is read only for servers the file does not\n" +
			"declare, and only when it exists.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.load(config.Overrides{})
			if err != nil {
				return err
			}
			if cfg.Flows == "" {
				fmt.Fprintln(c.stdout, "configuration OK")
				return nil
			}
			if _, err := os.Stat(cfg.Flows); errors.Is(err, fs.ErrNotExist) {
				// Only the default ./flows may be missing (config checks an
				// explicit path); a start deploys nothing then.
				fmt.Fprintln(c.stdout, "configuration OK (no flows)")
				return nil
			}
			var db *app.App
			defer func() {
				if db != nil {
					_ = db.Close()
				}
			}()
			stored := func(name string) (bool, error) {
				if db == nil {
					if path, ok := cfg.DatabaseIsSQLite(); ok {
						if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
							return false, nil // no database, so nothing added through the admin API
						}
					}
					logger, err := c.logger()
					if err != nil {
						return false, err
					}
					if db, err = app.OpenAsIs(cmd.Context(), cfg, logger); err != nil {
						return false, err
					}
				}
				return engine.StoredServers(cmd.Context(), db.Store)(name)
			}
			_, _, defs, err := engine.CheckPath(cfg.Flows, engine.DeclaredOr(declaredServers(cfg), stored))
			if err != nil {
				return fmt.Errorf("flows: %w", err)
			}
			names := make([]string, len(defs))
			for i, d := range defs {
				names[i] = d.Name
			}
			fmt.Fprintf(c.stdout, "configuration OK; flows: %s\n", strings.Join(names, ", "))
			return nil
		},
	}
	cmd.AddCommand(check)
	return cmd
}
