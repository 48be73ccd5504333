// Command flowgate is the Flowgate workflow automation server and its admin
// tool. See README.md and the product specification for the commands.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/buildinfo"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/flow/engine"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(os.Stdin, os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		// One line per problem, prefixed, so a script's log says which
		// program failed.
		for _, line := range strings.Split(strings.TrimSpace(err.Error()), "\n") {
			fmt.Fprintln(os.Stderr, "flowgate: "+line)
		}
		os.Exit(1)
	}
}

// cli holds what every command shares: the global flags and the streams.
type cli struct {
	configFile string
	database   string
	logLevel   string

	stdin          io.Reader
	stdout, stderr io.Writer
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "flowgate",
		Short:         "Workflow automation server with OAuth 2.0 and OpenID Connect built in",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&c.configFile, "config", "", "configuration file (YAML); default $FLOWGATE_CONFIG")
	pf.StringVar(&c.database, "database", "", "database DSN, sqlite:PATH or postgres://…; default $FLOWGATE_DATABASE, else sqlite:./flowgate.db")
	pf.StringVar(&c.logLevel, "log-level", "info", "debug | info | warn | error")
	root.AddCommand(
		c.serveCmd(),
		c.versionCmd(),
		c.migrateCmd(),
		c.backupCmd(),
		c.userCmd(),
		c.clientCmd(),
		c.keysCmd(),
		c.auditCmd(),
		c.flowCmd(),
		c.secretCmd(),
		c.configCmd(),
	)
	return root
}

// load resolves the configuration for a command; overrides carries the
// command's own flags.
func (c *cli) load(o config.Overrides) (*config.Config, error) {
	o.ConfigFile, o.Database = c.configFile, c.database
	return config.Load(o, os.Getenv)
}

// logger writes JSON when stderr is not a terminal (a service manager or a
// log shipper reads it) and text when a person does.
func (c *cli) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", c.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	if f, ok := c.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return slog.New(slog.NewTextHandler(c.stderr, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(c.stderr, opts)), nil
}

// opener is app.Open (admin commands: the database must exist) or
// app.OpenOrCreate (serve, migrate).
type opener func(context.Context, *config.Config, *slog.Logger) (*app.App, error)

// openWith loads the configuration and opens the database with o. The App
// it returns records what the command changes in the audit log (flushed by
// its Close).
func (c *cli) openWith(ctx context.Context, o opener) (*app.App, error) {
	cfg, err := c.load(config.Overrides{})
	if err != nil {
		return nil, err
	}
	logger, err := c.logger()
	if err != nil {
		return nil, err
	}
	a, err := o(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	a.Audit = audit.NewWriter(a.Store, logger, audit.Options{Disabled: !cfg.Auth.AuditLog})
	return a, nil
}

// withApp opens the existing database for one admin command and closes it
// after.
func (c *cli) withApp(ctx context.Context, run func(*app.App) error) error {
	return c.withAppFrom(ctx, app.Open, run)
}

func (c *cli) withAppFrom(ctx context.Context, o opener, run func(*app.App) error) error {
	a, err := c.openWith(ctx, o)
	if err != nil {
		return err
	}
	// An error closing (an audit event not written) is reported unless
	// the command itself failed.
	err = run(a)
	return errors.Join(err, a.Close())
}

func (c *cli) versionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, the commit, whether the tree was modified, and the Go version",
		Example: "  flowgate version\n" +
			"  flowgate version --json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := buildinfo.Read()
			if asJSON {
				return writeJSON(c.stdout, info)
			}
			fmt.Fprintln(c.stdout, info.String())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (c *cli) migrateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply database schema migrations and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The engine migrates the job queue's tables when it opens.
			return c.withEngine(cmd.Context(), app.OpenOrCreate, func(_ *app.App, e *engine.Engine) error {
				fmt.Fprintln(c.stdout, "database is up to date")
				return nil
			})
		},
	}
}

// writeJSON prints v as indented JSON, the output of every --json flag.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
