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
	cmd, err := newRoot(os.Stdin, os.Stdout, os.Stderr).ExecuteContextC(ctx)
	stop()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
		usage := errors.As(err, new(usageError))
		if usage {
			// Where the help is, on the problem's own line: scripts and
			// people read the last line.
			lines[len(lines)-1] += fmt.Sprintf(" (see '%s --help')", cmd.CommandPath())
		}
		// One line per problem, prefixed, so a script's log says which
		// program failed.
		for _, line := range lines {
			fmt.Fprintln(os.Stderr, "flowgate: "+line)
		}
		if usage {
			// 2, as for the shell's own builtins: the command line was
			// wrong, nothing was tried.
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a command line that cannot run: an unknown command or
// flag, a missing or extra argument. It exits with status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// markUsageErrors makes every mistake in a command line below root a
// usageError: flag errors, argument counts, and an unknown or missing
// subcommand (cobra itself would print the help and exit 0 for the last).
func markUsageErrors(root *cobra.Command) {
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() && !c.Runnable() {
			c.Args = func(cmd *cobra.Command, args []string) error {
				if len(args) > 0 {
					return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
				}
				return nil
			}
			c.RunE = func(cmd *cobra.Command, _ []string) error {
				names := make([]string, 0, len(cmd.Commands()))
				for _, sub := range cmd.Commands() {
					if sub.IsAvailableCommand() {
						names = append(names, sub.Name())
					}
				}
				return usageError{fmt.Errorf("%s needs a command: %s", cmd.CommandPath(), strings.Join(names, ", "))}
			}
		}
		if check := c.Args; check != nil {
			c.Args = func(cmd *cobra.Command, args []string) error {
				if err := check(cmd, args); err != nil {
					return usageError{err}
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
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
		Use:   "flowgate",
		Short: "Workflow automation server with OAuth 2.0 and OpenID Connect built in",
		Long: "Flowgate runs workflows and is their OAuth 2.0 / OpenID Connect server.\n\n" +
			"`flowgate serve` runs the server. Every other command works on the database directly (the one\n" +
			"--database or the configuration names), with servers running or not; none of them needs a token.\n" +
			"Exit status: 0 done, 1 failed, 2 the command line was wrong.",
		Example: "  flowgate serve --config flowgate.yaml\n" +
			"  flowgate config check --config flowgate.yaml\n" +
			"  flowgate flow deploy ./flows\n" +
			"  flowgate instance list --status failed --json",
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
		c.instanceCmd(),
		c.healthCmd(),
	)
	markUsageErrors(root)
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
		Use: "migrate",
		Example: "  flowgate migrate --database postgres://flowgate@db/flowgate\n" +
			"  flowgate migrate --config /etc/flowgate/flowgate.yaml",
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
