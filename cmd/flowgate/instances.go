package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowgate/flowgate/internal/api"
	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
)

// cliCaller is who the instance commands act as: an administrator, since
// whoever can run them can read the database anyway, named like the
// audit log names the command's user.
func cliCaller() engine.Caller {
	id := cliActor()
	return engine.Caller{User: flow.User{ID: id, Kind: "cli", Subject: strings.TrimPrefix(id, "cli:"), Issuer: "flowgate"}, Admin: true}
}

func (c *cli) instanceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "instance", Short: "Start, list, inspect and cancel flow instances",
		Example: "  flowgate instance list --status waiting\n" +
			"  flowgate instance history 0193a8c2-…"}
	cmd.AddCommand(c.instanceStartCmd(), c.instanceListCmd(), c.instanceShowCmd(), c.instanceHistoryCmd(), c.instanceCancelCmd())
	return cmd
}

func (c *cli) instanceStartCmd() *cobra.Command {
	var input, inputFile string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "start FLOW",
		Short: "Start an instance of a deployed flow",
		Long: "Start an instance of a deployed flow as an administrator (the audit log names the operating-system\n" +
			"user). The instance runs in this command until it waits, asks for a task or ends; a running server\n" +
			"takes it on from there (its wakes are queued in the database as for any instance).",
		Example: "  flowgate instance start expense-approval --input '{\"amount\": 120, \"purpose\": \"train\"}'\n" +
			"  flowgate instance start expense-approval --input-file expense.json --json",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data := []byte(input)
			if inputFile != "" {
				if input != "" {
					return usageError{errors.New("give --input or --input-file, not both")}
				}
				var err error
				if data, err = os.ReadFile(inputFile); err != nil {
					return fmt.Errorf("--input-file: %w", err)
				}
			}
			var in map[string]any
			if len(strings.TrimSpace(string(data))) > 0 {
				if err := json.Unmarshal(data, &in); err != nil {
					return fmt.Errorf("input: not a JSON object: %w", err)
				}
			}
			return c.withEngine(cmd.Context(), app.Open, func(a *app.App, e *engine.Engine) error {
				started, err := e.StartInstance(cmd.Context(), engine.StartRequest{Workflow: args[0], Input: in, Caller: cliCaller()})
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no flow %q", args[0])
				}
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(c.stdout, api.InstanceView(started.Instance))
				}
				fmt.Fprintf(c.stdout, "started %s (%s version %d): %s\n", started.Instance.ID, started.Instance.Workflow,
					started.Instance.Version, started.Instance.Status)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&input, "input", "", "the start input, a JSON object")
	cmd.Flags().StringVar(&inputFile, "input-file", "", "a file holding the start input")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the instance as JSON")
	return cmd
}

func instanceStatuses() []string {
	return []string{store.StatusRunning, store.StatusWaiting, store.StatusCompleted, store.StatusFailed, store.StatusCancelled}
}

func (c *cli) instanceListCmd() *cobra.Command {
	var workflow, status string
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List instances, newest first",
		Example: "  flowgate instance list\n" +
			"  flowgate instance list --flow expense-approval --status failed --limit 20\n" +
			"  flowgate instance list --status waiting --json",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("list takes no arguments (filter with --flow and --status)")
			}
			if status != "" && !slices.Contains(instanceStatuses(), status) {
				return fmt.Errorf("--status: %q is not one of %s", status, strings.Join(instanceStatuses(), ", "))
			}
			if limit < 0 {
				return fmt.Errorf("--limit must not be negative")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withEngine(cmd.Context(), app.Open, func(a *app.App, e *engine.Engine) error {
				var list []store.Instance
				p := store.Page{}
				for {
					p.Limit = store.MaxLimit
					if limit > 0 {
						p.Limit = min(store.MaxLimit, limit-len(list))
					}
					page, next, err := e.ListInstances(cmd.Context(), cliCaller(), store.InstanceFilter{Workflow: workflow, Status: status}, p)
					if err != nil {
						return err
					}
					list = append(list, page...)
					if next == "" || limit > 0 && len(list) >= limit {
						break
					}
					p.Cursor = next
				}
				if asJSON {
					out := make([]any, len(list))
					for i, in := range list {
						out[i] = api.InstanceView(in)
					}
					return writeJSON(c.stdout, out)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tFLOW\tVERSION\tSTATUS\tSTEP\tSTARTED BY\tSTARTED")
				for _, in := range list {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", in.ID, in.Workflow, in.Version, in.Status,
						in.CurrentStep, in.StartedBy, in.StartedAt.UTC().Format(time.RFC3339))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&workflow, "flow", "", "only instances of this flow")
	cmd.Flags().StringVar(&status, "status", "", "only instances in this status: "+strings.Join(instanceStatuses(), ", "))
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many (0: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array, each instance as the API shows it")
	return cmd
}

func (c *cli) instanceShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show ID",
		Short:   "Print an instance (status, input, vars, output, error) as JSON",
		Example: "  flowgate instance show 0193a8c2-…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withEngine(cmd.Context(), app.Open, func(a *app.App, e *engine.Engine) error {
				in, err := e.VisibleInstance(cmd.Context(), args[0], cliCaller())
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no instance %q", args[0])
				}
				if err != nil {
					return err
				}
				return writeJSON(c.stdout, api.InstanceView(in))
			})
		},
	}
}

func (c *cli) instanceHistoryCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history ID",
		Short: "List an instance's steps in the order they ran (inputs and outputs with secrets masked)",
		Example: "  flowgate instance history 0193a8c2-…\n" +
			"  flowgate instance history 0193a8c2-… --json",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withEngine(cmd.Context(), app.Open, func(a *app.App, e *engine.Engine) error {
				if _, err := e.VisibleInstance(cmd.Context(), args[0], cliCaller()); errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no instance %q", args[0])
				} else if err != nil {
					return err
				}
				var recs []store.StepRecord
				err := store.EachPage(cmd.Context(), func(ctx context.Context, p store.Page) ([]store.StepRecord, string, error) {
					return a.Store.History(ctx, args[0], p)
				}, func(s store.StepRecord) { recs = append(recs, s) })
				if err != nil {
					return err
				}
				if asJSON {
					out := make([]any, len(recs))
					for i, s := range recs {
						out[i] = api.HistoryView(s)
					}
					return writeJSON(c.stdout, out)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SEQ\tSTEP\tTYPE\tSTATUS\tATTEMPT\tSTARTED\tDURATION\tERROR")
				for _, s := range recs {
					dur := ""
					if !s.EndedAt.IsZero() {
						dur = s.EndedAt.Sub(s.StartedAt).Round(time.Millisecond).String()
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", s.Seq, s.StepID, s.Type, s.Status, s.Attempt,
						s.StartedAt.UTC().Format(time.RFC3339), dur, s.Error)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array, each step as the API shows it")
	return cmd
}

func (c *cli) instanceCancelCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "cancel ID",
		Short:   "Cancel an instance that has not ended (its open tasks are cancelled too)",
		Example: "  flowgate instance cancel 0193a8c2-…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withEngine(cmd.Context(), app.Open, func(a *app.App, e *engine.Engine) error {
				in, err := e.Cancel(cmd.Context(), args[0], cliCaller())
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no instance %q", args[0])
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "cancelled %s (%s)\n", in.ID, in.Workflow)
				return nil
			})
		},
	}
}
