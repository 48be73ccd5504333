package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/flow/engine"
)

func (c *cli) flowCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "flow", Short: "Manage flow definitions"}
	var dryRun bool
	deploy := &cobra.Command{
		Use:   "deploy FILE|DIR",
		Short: "Validate and deploy a flow definition, or every .yaml, .yml and .json file of a folder",
		Long: "Validate and deploy flow definitions. A definition whose source is unchanged keeps its version;\n" +
			"a changed one becomes the next version, and running instances finish on the version they started on.\n" +
			"If any file is invalid, nothing is deployed and every problem is listed.\n" +
			"With --dry-run, the files are only checked, as a deploy would check them; nothing is stored.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withEngine(cmd.Context(), app.Open, func(a *app.App, e *engine.Engine) error {
				if dryRun {
					files, defs, err := e.CheckDeploy(cmd.Context(), args[0])
					if err != nil {
						return err
					}
					for i, d := range defs {
						fmt.Fprintf(c.stdout, "valid %s (%s)\n", d.Name, files[i])
					}
					return nil
				}
				deployed, err := e.DeployPath(cmd.Context(), args[0], cliActor())
				if err != nil {
					return err
				}
				for _, d := range deployed {
					verb := "deployed"
					if !d.Created {
						verb = "unchanged"
					}
					fmt.Fprintf(c.stdout, "%s %s version %d (%s)\n", verb, d.Definition.Name, d.Definition.Version, d.File)
				}
				return nil
			})
		},
	}
	deploy.Flags().BoolVar(&dryRun, "dry-run", false, "check the definitions as a deploy would, and deploy nothing")
	cmd.AddCommand(deploy)
	return cmd
}

// withEngine opens the database and an engine that does not run
// instances (a running server does), so it needs no job queue.
func (c *cli) withEngine(ctx context.Context, o opener, fn func(*app.App, *engine.Engine) error) error {
	return c.withAppFrom(ctx, o, func(a *app.App) error {
		e, err := a.NewEngine(ctx, engine.Config{NoQueue: true, DeclaredServers: declaredServers(a.Config)})
		if err != nil {
			return err
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = e.Close(cctx)
		}()
		return fn(a, e)
	})
}

// declaredServers names the OAuth servers the configuration declares. A
// command deploys against them as well as those in the store, since only
// a starting server writes the file's servers to the store.
func declaredServers(cfg *config.Config) []string {
	names := make([]string, 0, len(cfg.OAuthServers))
	for _, s := range cfg.OAuthServers {
		names = append(names, s.Name)
	}
	return names
}
