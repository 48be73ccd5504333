package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/store"
)

func (c *cli) secretCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "secret", Short: "Manage the named secrets flows read as ${{ secrets.NAME }}",
		Example: "  printf %s \"$TOKEN\" | flowgate secret set crm_token --value-stdin\n" +
			"  flowgate secret list"}
	cmd.AddCommand(c.secretSetCmd(), c.secretListCmd(), c.secretRemoveCmd())
	return cmd
}

func (c *cli) secretSetCmd() *cobra.Command {
	var fromStdin bool
	cmd := &cobra.Command{
		Use: "set NAME",
		Example: "  flowgate secret set crm_token\n" +
			"  printf %s \"$TOKEN\" | flowgate secret set crm_token --value-stdin",
		Short: "Set a named secret (value from a prompt or --value-stdin; never readable back)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := flow.CheckSecretName(name); err != nil {
				return err
			}
			value, err := c.readSecretValue(fromStdin)
			if err != nil {
				return err
			}
			if err := flow.CheckSecretValue([]byte(value)); err != nil {
				return fmt.Errorf("secret %s: %w", name, err)
			}
			return c.withApp(cmd.Context(), func(a *app.App) error {
				_, created, err := c.changes(a).SetSecret(cmd.Context(), cliActor(), name, []byte(value))
				if err != nil {
					return err
				}
				verb := "replaced"
				if created {
					verb = "set"
				}
				fmt.Fprintf(c.stdout, "%s secret %s\n", verb, name)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "value-stdin", false, "read the value from stdin (all of it, one trailing newline dropped)")
	return cmd
}

// readSecretValue reads the value from stdin with --value-stdin (all of
// it, so a PEM key fits), or asks twice on the terminal. Never from
// argv, where other users of the machine and the shell history would
// see it.
func (c *cli) readSecretValue(fromStdin bool) (string, error) {
	if !fromStdin {
		return c.promptTwice("Value", "value", "--value-stdin")
	}
	b, err := io.ReadAll(io.LimitReader(c.stdin, flow.MaxSecretLen+2))
	if err != nil {
		return "", fmt.Errorf("reading the value from stdin: %w", err)
	}
	v := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(v, "\r"), nil
}

// secretJSON is a named secret in the output of secret list --json: the
// name and times, never the value.
type secretJSON struct {
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

func (c *cli) secretListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the named secrets (names and times, never values)",
		Example: "  flowgate secret list\n  flowgate secret list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withApp(cmd.Context(), func(a *app.App) error {
				list := []secretJSON{}
				err := store.EachPage(cmd.Context(), a.Store.ListNamedSecrets, func(n store.NamedSecret) {
					list = append(list, secretJSON{Name: n.Name, CreatedAt: n.CreatedAt.UTC().Format(time.RFC3339), UpdatedAt: n.UpdatedAt.UTC().Format(time.RFC3339)})
				})
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(c.stdout, list)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tCREATED\tUPDATED")
				for _, n := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Name, n.CreatedAt, n.UpdatedAt)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func (c *cli) secretRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "remove NAME",
		Example: "  flowgate secret remove crm_token",
		Short:   "Remove a named secret (steps that read it fail from then on)",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withApp(cmd.Context(), func(a *app.App) error {
				if err := c.changes(a).RemoveSecret(cmd.Context(), cliActor(), args[0]); errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no secret %q", args[0])
				} else if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "removed secret %s\n", args[0])
				return nil
			})
		},
	}
}
