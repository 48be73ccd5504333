package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/flowgate/flowgate/internal/account"
	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/mfa"
	"github.com/flowgate/flowgate/internal/store"
)

func (c *cli) userCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage users", Example: "  flowgate user list\n" +
		"  flowgate user add alice --role employee"}
	cmd.AddCommand(c.userAddCmd(), c.userListCmd(), c.userEditCmd(), c.userPasswdCmd(), c.userDisableCmd(true), c.userDisableCmd(false), c.userResetMFACmd())
	return cmd
}

// readPassword reads a new password from stdin (one line) with
// --password-stdin, or asks twice on the terminal. Never from argv, where
// other users of the machine and the shell history would see it.
func (c *cli) readPassword(fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(c.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading password from stdin: %w", err)
		}
		return checkPassword(strings.TrimRight(line, "\r\n"))
	}
	p, err := c.promptTwice("Password", "password", "--password-stdin")
	if err != nil {
		return "", err
	}
	return checkPassword(p)
}

// promptTwice asks for a hidden value (what: "Password") twice on the
// terminal; flag is the way to pipe it in instead, for the error when
// stdin is not a terminal.
func (c *cli) promptTwice(what, noun, flag string) (string, error) {
	f, ok := c.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", fmt.Errorf("stdin is not a terminal: pipe the %s in with %s", noun, flag)
	}
	fmt.Fprint(c.stderr, what+": ")
	p1, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(c.stderr)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", noun, err)
	}
	fmt.Fprint(c.stderr, "Again: ")
	p2, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(c.stderr)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", noun, err)
	}
	if string(p1) != string(p2) {
		return "", fmt.Errorf("the two %ss differ", noun)
	}
	return string(p1), nil
}

// checkPassword applies the one password policy (internal/account), the
// admin API's and the account page's.
func checkPassword(p string) (string, error) {
	if err := account.CheckPassword(p); err != nil {
		return "", err
	}
	return p, nil
}

func (c *cli) userAddCmd() *cobra.Command {
	var email, name string
	var roles []string
	var fromStdin bool
	cmd := &cobra.Command{
		Use: "add USERNAME",
		Example: "  flowgate user add alice --name \"Alice Example\" --email alice@example.com --role employee,approver\n" +
			"  printf %s \"$PASSWORD\" | flowgate user add bob --password-stdin",
		Short: "Add a user (password from a prompt or --password-stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			username := args[0]
			if err := (config.User{Username: username, Email: email, Name: name, Roles: roles}).Validate(); err != nil {
				return err
			}
			password, err := c.readPassword(fromStdin)
			if err != nil {
				return err
			}
			return c.withApp(cmd.Context(), func(a *app.App) error {
				hash, err := a.Hasher.Hash(password)
				if err != nil {
					return err
				}
				now := time.Now().UTC()
				err = account.Create(cmd.Context(), a.Store, a.Audit, cliActor(), store.User{
					Username: username, PasswordHash: hash, Email: email, EmailVerified: email != "",
					Name: name, Roles: roles, CreatedAt: now, UpdatedAt: now,
				})
				if errors.Is(err, store.ErrConflict) {
					return fmt.Errorf("user %q already exists", username)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "added user %s\n", username)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&email, "email", "", "email address")
	cmd.Flags().StringVar(&name, "name", "", "display name")
	cmd.Flags().StringSliceVar(&roles, "role", nil, "role (repeat or comma-separate)")
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from stdin")
	return cmd
}

// userJSON is a user in the output of user list --json: never the
// password hash.
type userJSON struct {
	Username      string   `json:"username"`
	Name          string   `json:"name"`
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	Roles         []string `json:"roles"`
	Disabled      bool     `json:"disabled"`
	CreatedAt     string   `json:"created_at"`
	UpdatedAt     string   `json:"updated_at"`
}

func (c *cli) userListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List users",
		Example: "  flowgate user list\n  flowgate user list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withApp(cmd.Context(), func(a *app.App) error {
				list := []userJSON{}
				err := store.EachPage(cmd.Context(), a.Store.ListUsers, func(u store.User) {
					list = append(list, userJSON{Username: u.Username, Name: u.Name, Email: u.Email, EmailVerified: u.EmailVerified,
						Roles: append([]string{}, u.Roles...), Disabled: u.Disabled,
						CreatedAt: u.CreatedAt.UTC().Format(time.RFC3339), UpdatedAt: u.UpdatedAt.UTC().Format(time.RFC3339)})
				})
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(c.stdout, list)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USERNAME\tNAME\tEMAIL\tROLES\tSTATUS\tCREATED")
				for _, u := range list {
					status := "active"
					if u.Disabled {
						status = "disabled"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Username, u.Name, u.Email,
						strings.Join(u.Roles, ","), status, u.CreatedAt)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func (c *cli) userEditCmd() *cobra.Command {
	var roles, addRoles, removeRoles []string
	var name, email string
	cmd := &cobra.Command{
		Use:   "edit USERNAME",
		Short: "Change a user's roles, name or email",
		Long: "Change a user's roles (--role replaces them all; --add-role and --remove-role change some), display\n" +
			"name or email. Only the flags given change anything; the change is audited as user.updated.\n" +
			"A user the configuration file declares gets the file's values back at the next start.",
		Example: "  flowgate user edit alice --role employee --role approver\n" +
			"  flowgate user edit alice --add-role admin\n" +
			"  flowgate user edit alice --remove-role approver --email alice@example.com",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("give one username")
			}
			f := cmd.Flags()
			if f.Changed("role") && (f.Changed("add-role") || f.Changed("remove-role")) {
				return fmt.Errorf("--role replaces the roles: give it alone, or --add-role/--remove-role")
			}
			if !slices.ContainsFunc([]string{"role", "add-role", "remove-role", "name", "email"}, f.Changed) {
				return fmt.Errorf("nothing to change: give --role, --add-role, --remove-role, --name or --email")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			return c.updateUser(cmd, args[0], func(_ *app.App, u *store.User) error {
				next := slices.Clone(u.Roles)
				if f.Changed("role") {
					next = slices.DeleteFunc(slices.Clone(roles), func(r string) bool { return r == "" })
				}
				for _, r := range addRoles {
					if !slices.Contains(next, r) {
						next = append(next, r)
					}
				}
				next = slices.DeleteFunc(next, func(r string) bool { return slices.Contains(removeRoles, r) })
				if f.Changed("name") {
					u.Name = name
				}
				if f.Changed("email") && email != u.Email {
					u.Email, u.EmailVerified = email, email != ""
				}
				u.Roles = next
				// The same rules as user add and the configuration file.
				return (config.User{Username: u.Username, Email: u.Email, Name: u.Name, Roles: u.Roles}).Validate()
			}, "updated user")
		},
	}
	cmd.Flags().StringSliceVar(&roles, "role", nil, "the user's roles, replacing the current ones (repeat or comma-separate; --role '' removes all)")
	cmd.Flags().StringSliceVar(&addRoles, "add-role", nil, "a role to add (repeat or comma-separate)")
	cmd.Flags().StringSliceVar(&removeRoles, "remove-role", nil, "a role to remove (repeat or comma-separate)")
	cmd.Flags().StringVar(&name, "name", "", "display name")
	cmd.Flags().StringVar(&email, "email", "", "email address")
	return cmd
}

func (c *cli) userPasswdCmd() *cobra.Command {
	var fromStdin bool
	cmd := &cobra.Command{
		Use: "passwd USERNAME",
		Example: "  flowgate user passwd alice\n" +
			"  printf %s \"$PASSWORD\" | flowgate user passwd alice --password-stdin",
		Short: "Set a user's password (from a prompt or --password-stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			password, err := c.readPassword(fromStdin)
			if err != nil {
				return err
			}
			return c.updateUser(cmd, args[0], func(a *app.App, u *store.User) error {
				u.PasswordHash, err = a.Hasher.Hash(password)
				return err
			}, "password changed for")
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from stdin")
	return cmd
}

func (c *cli) userDisableCmd(disable bool) *cobra.Command {
	use, short, done := "disable USERNAME", "Disable a user: no more sign-ins, sessions and refresh tokens revoked", "disabled"
	if !disable {
		use, short, done = "enable USERNAME", "Enable a disabled user", "enabled"
	}
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Example: "  flowgate user " + strings.Fields(use)[0] + " alice",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withApp(cmd.Context(), func(a *app.App) error {
				_, err := account.SetDisabled(cmd.Context(), a.Store, a.Audit, cliActor(), args[0], disable)
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no user %q", args[0])
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "%s %s\n", done, args[0])
				return nil
			})
		},
	}
}

func (c *cli) userResetMFACmd() *cobra.Command {
	return &cobra.Command{
		Use:     "reset-mfa USERNAME",
		Short:   "Remove a user's second factor (authenticator app and recovery codes), so they enrol again",
		Example: "  flowgate user reset-mfa alice",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withApp(cmd.Context(), func(a *app.App) error {
				m := mfa.New(mfa.Options{Store: a.Store, Ring: a.Ring, Auditor: a.Audit})
				err := m.Reset(cmd.Context(), cliActor(), args[0])
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no user %q", args[0])
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "second factor reset for %s\n", args[0])
				return nil
			})
		},
	}
}

func (c *cli) updateUser(cmd *cobra.Command, username string, change func(*app.App, *store.User) error, done string) error {
	return c.withApp(cmd.Context(), func(a *app.App) error {
		u, err := a.Store.GetUser(cmd.Context(), username)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no user %q", username)
		}
		if err != nil {
			return err
		}
		next := u
		if err := change(a, &next); err != nil {
			return err
		}
		if _, err := account.Update(cmd.Context(), a.Store, a.Audit, cliActor(), u, next); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s %s\n", done, username)
		return nil
	})
}

// cliActor is who a command's changes are audited as: "cli:" and the
// operating-system user who ran it (the database cannot tell which
// Flowgate administrator that is; the OS account can, from its own logs).
func cliActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}
