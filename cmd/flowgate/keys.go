package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/authserver"
)

func (c *cli) keysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage the authorization server's signing keys",
		Example: "  flowgate keys rotate"}
	var idToken bool
	rotate := &cobra.Command{
		Use: "rotate",
		Example: "  flowgate keys rotate\n" +
			"  flowgate keys rotate --id-token",
		Short: "Add a new active signing key; the old one stays published until its tokens expire",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withApp(cmd.Context(), func(a *app.App) error {
				k, err := a.RotateKey(cmd.Context(), cliActor(), idToken)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "new %s key %s (%s); the previous one stays published for %s\n", k.Purpose, k.ID, k.Alg, authserver.MaxTokenTTL(a.Config.Auth))
				return nil
			})
		},
	}
	rotate.Flags().BoolVar(&idToken, "id-token", false, "rotate the ID-token key (RS256) instead of the access-token key")
	cmd.AddCommand(rotate)
	return cmd
}
