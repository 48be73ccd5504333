package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/duration"
	"github.com/flowgate/flowgate/internal/store"
)

// defaultAuditLimit bounds what `flowgate audit` prints unless told
// otherwise: enough to investigate, not so much that a busy server's log
// floods the terminal.
const defaultAuditLimit = 1000

// auditJSON is one line of `flowgate audit --json`. Every field is always
// present, so scripts (jq) need no defaults.
type auditJSON struct {
	ID         int64  `json:"id"`
	Time       string `json:"time"`
	Event      string `json:"event"`
	Outcome    string `json:"outcome"`
	User       string `json:"user"`
	Client     string `json:"client"`
	RemoteAddr string `json:"remote_addr"`
	UserAgent  string `json:"user_agent"`
	Detail     string `json:"detail"`
}

func (c *cli) auditCmd() *cobra.Command {
	var since, user, event string
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use: "audit",
		Example: "  flowgate audit --since 24h\n" +
			"  flowgate audit --event login.failure --user alice --limit 50\n" +
			"  flowgate audit --since 2026-01-01T00:00:00Z --json",
		Short: "Show the audit log (sign-ins, tokens, changes), newest first",
		Long: `Show the audit log (auth.audit_log), newest first: sign-ins, tokens and the changes
made through the admin API and the commands, with who made them.

--since takes a duration (90m, 1h30m, 7d, 1d12h), or an RFC 3339 time.
--limit 0 prints every matching event. Events: ` + strings.Join(audit.Events(), ", ") + ".",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := store.AuditFilter{User: user, Event: event}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return fmt.Errorf("--since: %w", err)
				}
				f.Since = t
			}
			if limit < 0 {
				return fmt.Errorf("--limit: %d is negative; give a count, or 0 for no limit", limit)
			}
			if event != "" && !audit.IsEvent(event) {
				return fmt.Errorf("--event: %q is not an audit event; the events are: %s", event, strings.Join(audit.Events(), ", "))
			}
			return c.withApp(cmd.Context(), func(a *app.App) error {
				if !a.Config.Auth.AuditLog {
					fmt.Fprintln(c.stderr, "note: auth.audit_log is off; no new events are being recorded")
				}
				return c.printAudit(cmd, a, f, limit, asJSON)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&since, "since", "", "only events newer than this: a duration (1h, 30m, 7d) or an RFC 3339 time")
	fl.StringVar(&user, "user", "", "only events of this user")
	fl.StringVar(&event, "event", "", "only events of this name, e.g. "+audit.LoginFailure)
	fl.IntVar(&limit, "limit", defaultAuditLimit, "print at most this many events, newest first; 0 for all")
	fl.BoolVar(&asJSON, "json", false, "print one JSON object per line")
	return cmd
}

// printAudit pages through the matching events and prints at most limit of
// them (all when limit is 0), without holding them all in memory.
func (c *cli) printAudit(cmd *cobra.Command, a *app.App, f store.AuditFilter, limit int, asJSON bool) error {
	ctx := cmd.Context()
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	enc := json.NewEncoder(c.stdout)
	if !asJSON {
		fmt.Fprintln(tw, "TIME\tEVENT\tOUTCOME\tUSER\tCLIENT\tREMOTE\tDETAIL")
	}
	printed, more := 0, false
	for {
		f.Page.Limit = store.MaxLimit
		if limit > 0 {
			f.Page.Limit = min(store.MaxLimit, limit-printed)
		}
		events, next, err := a.Store.ListAudit(ctx, f)
		if err != nil {
			return fmt.Errorf("reading the audit log: %w", err)
		}
		for _, e := range events {
			if asJSON {
				if err := enc.Encode(auditJSON{ID: e.ID, Time: e.Time.UTC().Format(time.RFC3339Nano), Event: e.Event,
					Outcome: e.Outcome, User: e.User, Client: e.Client, RemoteAddr: e.RemoteAddr,
					UserAgent: e.UserAgent, Detail: e.Detail}); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), cell(e.Event),
					cell(e.Outcome), cell(e.User), cell(e.Client), cell(e.RemoteAddr), cell(e.Detail))
			}
		}
		printed += len(events)
		if next == "" {
			break
		}
		if limit > 0 && printed >= limit {
			more = true
			break
		}
		f.Page.Cursor = next
	}
	if !asJSON {
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if printed == 0 && !asJSON {
		fmt.Fprintln(c.stderr, "no matching events")
	}
	if more {
		// On stderr, so that --json output stays one object per line.
		fmt.Fprintf(c.stderr, "showing the newest %d events; more match (raise --limit, or --limit 0 for all)\n", printed)
	}
	return nil
}

// cell keeps table columns aligned: tabwriter collapses an empty cell, and
// an event's fields were sanitized on write, so they hold no tabs or
// newlines that would break the row.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseSince turns --since into a time: a duration before now ("90m",
// "7d", "1.5d", "1d12h"), or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := duration.Positive(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w, or an RFC 3339 time", err)
	}
	return now.Add(-d), nil
}
