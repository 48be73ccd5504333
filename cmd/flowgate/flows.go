package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
)

func (c *cli) flowCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "flow", Short: "Deploy, list, export and draw flow definitions",
		Example: "  flowgate flow deploy ./flows\n" +
			"  flowgate flow list\n" +
			"  flowgate flow graph expense-approval"}
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
	deploy.Example = "  flowgate flow deploy flows/expense.yaml\n" +
		"  flowgate flow deploy ./flows\n" +
		"  flowgate flow deploy --dry-run ./flows"
	deploy.Flags().BoolVar(&dryRun, "dry-run", false, "check the definitions as a deploy would, and deploy nothing")
	cmd.AddCommand(deploy, c.flowListCmd(), c.flowExportCmd(), c.flowGraphCmd())
	return cmd
}

// flowJSON is a deployed flow in the output of flow list --json.
type flowJSON struct {
	Name       string `json:"name"`
	Version    int    `json:"version"`
	Title      string `json:"title"`
	File       string `json:"file"`
	DeployedBy string `json:"deployed_by"`
	DeployedAt string `json:"deployed_at"`
}

func (c *cli) flowListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the deployed flows, the latest version of each",
		Example: "  flowgate flow list\n  flowgate flow list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withApp(cmd.Context(), func(a *app.App) error {
				list := []flowJSON{}
				err := store.EachPage(cmd.Context(), a.Store.ListFlows, func(v store.FlowVersion) {
					list = append(list, flowJSON{Name: v.Name, Version: v.Version, Title: v.Title, File: v.Filename,
						DeployedBy: v.DeployedBy, DeployedAt: v.DeployedAt.UTC().Format(time.RFC3339)})
				})
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(c.stdout, list)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tVERSION\tTITLE\tDEPLOYED\tBY")
				for _, f := range list {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", f.Name, f.Version, f.Title, f.DeployedAt, f.DeployedBy)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func (c *cli) flowExportCmd() *cobra.Command {
	var all bool
	var dir string
	var version int
	cmd := &cobra.Command{
		Use:   "export NAME | --all --dir DIR",
		Short: "Print a deployed flow's source exactly as deployed, or write every flow to a folder",
		Long: "Print the source of a deployed flow (its latest version, or --version N) exactly as it was deployed.\n" +
			"With --all, write the latest version of every flow to --dir as NAME.yaml (NAME.json for a flow\n" +
			"deployed from JSON); deploying that folder again changes nothing.",
		Example: "  flowgate flow export expense-approval > expense-approval.yaml\n" +
			"  flowgate flow export expense-approval --version 3\n" +
			"  flowgate flow export --all --dir ./flows-backup",
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return errors.New("give a flow name or --all, not both")
			case all && dir == "":
				return errors.New("--all writes files: give the folder with --dir")
			case !all && len(args) != 1:
				return errors.New("give one flow name, or --all --dir DIR")
			case !all && dir != "":
				return errors.New("--dir goes with --all")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withApp(cmd.Context(), func(a *app.App) error {
				ctx := cmd.Context()
				if !all {
					v, err := a.Store.GetFlow(ctx, args[0], version)
					if errors.Is(err, store.ErrNotFound) {
						if version > 0 {
							return fmt.Errorf("no version %d of flow %q", version, args[0])
						}
						return fmt.Errorf("no flow %q", args[0])
					}
					if err != nil {
						return err
					}
					_, err = c.stdout.Write(v.Source)
					return err
				}
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				var err error
				walkErr := store.EachPage(ctx, a.Store.ListFlows, func(v store.FlowVersion) {
					if err != nil {
						return
					}
					ext := ".yaml"
					if strings.EqualFold(filepath.Ext(v.Filename), ".json") {
						ext = ".json"
					}
					path := filepath.Join(dir, v.Name+ext)
					if err = os.WriteFile(path, v.Source, 0o644); err == nil {
						fmt.Fprintf(c.stdout, "wrote %s version %d to %s\n", v.Name, v.Version, path)
					}
				})
				return errors.Join(walkErr, err)
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "export every flow (with --dir)")
	cmd.Flags().StringVar(&dir, "dir", "", "the folder --all writes to (created if missing)")
	cmd.Flags().IntVar(&version, "version", 0, "the version to export; default the latest")
	return cmd
}

func (c *cli) flowGraphCmd() *cobra.Command {
	var version int
	cmd := &cobra.Command{
		Use:   "graph FILE|NAME",
		Short: "Print a flow as a Mermaid flowchart",
		Long: "Print a flow definition as a Mermaid flowchart (paste it in a ```mermaid block of a README, an\n" +
			"issue or a wiki). The argument is a definition file when such a file exists, which needs no\n" +
			"database, else the name of a deployed flow.",
		Example: "  flowgate flow graph flows/expense-approval.yaml\n" +
			"  flowgate flow graph expense-approval --version 2 > expense.mmd",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if data, err := os.ReadFile(args[0]); err == nil {
				def, err := flow.Parse(data, args[0])
				if err != nil {
					return err
				}
				_, err = io.WriteString(c.stdout, def.Mermaid())
				return err
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return c.withApp(cmd.Context(), func(a *app.App) error {
				v, err := a.Store.GetFlow(cmd.Context(), args[0], version)
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no file and no deployed flow named %q", args[0])
				}
				if err != nil {
					return err
				}
				def, err := flow.Parse(v.Source, v.Filename)
				if err != nil {
					return err
				}
				_, err = io.WriteString(c.stdout, def.Mermaid())
				return err
			})
		},
	}
	cmd.Flags().IntVar(&version, "version", 0, "the deployed version to draw; default the latest")
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
