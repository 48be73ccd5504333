package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/flowgate/flowgate/internal/admin"
	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
)

func (c *cli) clientCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "client", Short: "Manage OAuth clients", Example: "  flowgate client list\n" +
		"  flowgate client add portal --redirect-uri https://portal.example/callback"}
	cmd.AddCommand(c.clientAddCmd(), c.clientListCmd(), c.clientRemoveCmd())
	return cmd
}

func (c *cli) clientAddCmd() *cobra.Command {
	var cc config.Client
	var publicKeyFile string
	cmd := &cobra.Command{
		Use: "add ID",
		Example: "  flowgate client add portal --name \"Expense portal\" --redirect-uri https://portal.example/callback\n" +
			"  flowgate client add reporting --grant-type client_credentials --scope workflows.read --role reporting\n" +
			"  flowgate client add spa --auth-method none --redirect-uri http://127.0.0.1:9000/callback --allowed-origin http://127.0.0.1:9000",
		Short: "Register a client; a confidential client's secret is shown once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cc.ID = args[0]
			if publicKeyFile != "" {
				pem, err := os.ReadFile(publicKeyFile)
				if err != nil {
					return fmt.Errorf("--public-key-file: %w", err)
				}
				cc.PublicKeyPEM = string(pem)
			}
			if admin.NeedsSecret(cc.TokenEndpointAuthMethod) {
				// Validation wants a secret to be present; the real one is
				// generated below and never chosen by a person.
				cc.Secret = "generated"
			}
			if err := cc.Validate(); err != nil {
				return err
			}
			return c.withApp(cmd.Context(), func(a *app.App) error {
				now := time.Now().UTC()
				sc := store.Client{
					ID: cc.ID, Name: cc.Name, RedirectURIs: cc.RedirectURIs, PostLogoutRedirectURIs: cc.PostLogoutRedirectURIs,
					GrantTypes: cc.GrantTypes, Scopes: cc.Scopes, TokenEndpointAuthMethod: cc.TokenEndpointAuthMethod,
					JWKSURI: cc.JWKSURI, PublicKeyPEM: cc.PublicKeyPEM, Consent: cc.Consent, Roles: cc.Roles,
					DPoP: cc.DPoP, AllowedOrigins: cc.AllowedOrigins, Audiences: cc.Audiences,
					CreatedAt: now, UpdatedAt: now,
				}
				_, secret, err := c.changes(a).CreateClient(cmd.Context(), cliActor(), sc)
				if errors.Is(err, store.ErrConflict) {
					return fmt.Errorf("client %q already exists", cc.ID)
				} else if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "client_id: %s\n", cc.ID)
				if secret != "" {
					fmt.Fprintf(c.stdout, "client_secret: %s\n(shown only this once; only a hash is stored)\n", secret)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cc.Name, "name", "", "display name")
	f.StringSliceVar(&cc.RedirectURIs, "redirect-uri", nil, "redirect URI (repeat)")
	f.StringSliceVar(&cc.PostLogoutRedirectURIs, "post-logout-redirect-uri", nil, "post-logout redirect URI (repeat)")
	f.StringSliceVar(&cc.GrantTypes, "grant-type", []string{string(oidc.GrantTypeCode), string(oidc.GrantTypeRefreshToken)}, "authorization_code | refresh_token | client_credentials (repeat)")
	f.StringSliceVar(&cc.Scopes, "scope", []string{"openid", "profile", "email", "offline_access"}, "allowed scope (repeat)")
	f.StringVar(&cc.TokenEndpointAuthMethod, "auth-method", string(oidc.AuthMethodBasic), "client_secret_basic | client_secret_post | private_key_jwt | none")
	f.StringVar(&cc.JWKSURI, "jwks-uri", "", "private_key_jwt: URL of the client's JWKS")
	f.StringVar(&publicKeyFile, "public-key-file", "", "private_key_jwt: PEM public key file")
	f.StringVar(&cc.Consent, "consent", "user", "user (ask each user once) | admin (pre-approved)")
	f.StringSliceVar(&cc.Roles, "role", nil, "role the client holds in client_credentials (repeat)")
	f.BoolVar(&cc.DPoP, "dpop", false, "require DPoP-bound tokens (RFC 9449)")
	f.StringSliceVar(&cc.AllowedOrigins, "allowed-origin", nil, "browser origin (scheme://host[:port]) that gets CORS answers, for a single-page app (repeat)")
	f.StringSliceVar(&cc.Audiences, "audience", nil, "resource (RFC 8707) besides the public URL the client may ask tokens for (repeat)")
	return cmd
}

// changes is the admin service over a's database, recording in a's audit
// log.
func (c *cli) changes(a *app.App) *admin.Service {
	return &admin.Service{Store: a.Store, Ring: a.Ring, Audit: a.Audit}
}

// clientJSON is a client in the output of client list --json: never
// its secret's hash.
type clientJSON struct {
	ID                      string   `json:"id"`
	Name                    string   `json:"name"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	Scopes                  []string `json:"scopes"`
	RedirectURIs            []string `json:"redirect_uris"`
	Roles                   []string `json:"roles"`
	DPoP                    bool     `json:"dpop"`
	AllowedOrigins          []string `json:"allowed_origins"`
	Audiences               []string `json:"audiences"`
	CreatedAt               string   `json:"created_at"`
}

func (c *cli) clientListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List clients",
		Example: "  flowgate client list\n  flowgate client list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withApp(cmd.Context(), func(a *app.App) error {
				list := []clientJSON{}
				err := store.EachPage(cmd.Context(), a.Store.ListClients, func(cl store.Client) {
					list = append(list, clientJSON{ID: cl.ID, Name: cl.Name, TokenEndpointAuthMethod: cl.TokenEndpointAuthMethod,
						GrantTypes: nonNil(cl.GrantTypes), Scopes: nonNil(cl.Scopes), RedirectURIs: nonNil(cl.RedirectURIs),
						Roles: nonNil(cl.Roles), DPoP: cl.DPoP, AllowedOrigins: nonNil(cl.AllowedOrigins), Audiences: nonNil(cl.Audiences),
						CreatedAt: cl.CreatedAt.UTC().Format(time.RFC3339)})
				})
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(c.stdout, list)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tAUTH\tGRANTS\tREDIRECT URIS\tCREATED")
				for _, cl := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", cl.ID, cl.Name, cl.TokenEndpointAuthMethod,
						strings.Join(cl.GrantTypes, ","), strings.Join(cl.RedirectURIs, " "), cl.CreatedAt)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

// nonNil makes an absent list print as [] rather than null in JSON.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (c *cli) clientRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "remove ID",
		Example: "  flowgate client remove portal",
		Short:   "Remove a client",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withApp(cmd.Context(), func(a *app.App) error {
				if err := c.changes(a).RemoveClient(cmd.Context(), cliActor(), args[0]); errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no client %q", args[0])
				} else if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "removed client %s\n", args[0])
				return nil
			})
		},
	}
}

func (c *cli) backupCmd() *cobra.Command {
	return &cobra.Command{
		Use: "backup FILE",
		Example: "  flowgate backup /var/backups/flowgate-$(date +%F).db\n" +
			"  flowgate backup --database sqlite:/var/lib/flowgate/flowgate.db /var/backups/flowgate.db",
		Short: "Write an online, consistent copy of a SQLite database to FILE",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withApp(cmd.Context(), func(a *app.App) error {
				if err := backend.Backup(cmd.Context(), a.Store, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "backup written to %s\n", args[0])
				return nil
			})
		},
	}
}
