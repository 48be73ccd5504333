package authserver

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// ClientRoles answers a client's roles from the client cache and honours a removal within the
// cache's second, not later.
func TestClientRolesThroughCache(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	ctx := context.Background()
	c, err := e.st.GetClient(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	c.Roles = []string{"invoicer"}
	if err := e.st.UpdateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	roles, err := e.srv.ClientRoles(ctx, "svc")
	if err != nil || !slices.Equal(roles, []string{"invoicer"}) {
		t.Fatalf("roles %v, err %v", roles, err)
	}
	if err := e.st.DeleteClient(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(clientTTL + 50*time.Millisecond)
	if _, err := e.srv.ClientRoles(ctx, "svc"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a removed client after %v: %v, want store.ErrNotFound", clientTTL, err)
	}
	if _, err := e.srv.ClientRoles(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unknown client: %v", err)
	}
}
