package account_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/account"
	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/store"
)

func openApp(t *testing.T) *app.App {
	t.Helper()
	cfg := config.Default()
	cfg.Database = "sqlite:" + filepath.Join(t.TempDir(), "f.db")
	a, err := app.OpenOrCreate(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// Disabling a user takes effect at once: their sessions end, their refresh
// tokens stop working, and the audit log says so.
func TestSetUserDisabledRevokesAccess(t *testing.T) {
	ctx := context.Background()
	a := openApp(t)
	now := time.Now().UTC()
	if err := a.Store.CreateUser(ctx, store.User{Username: "bob", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	rt := store.RefreshToken{Hash: "h1", FamilyID: "f1", ClientID: "portal", User: "bob", CreatedAt: now, ExpiresAt: now.Add(time.Hour), AuthTime: now}
	if err := a.Store.CreateRefreshToken(ctx, rt); err != nil {
		t.Fatal(err)
	}
	if err := a.Store.CreateSession(ctx, store.Session{IDHash: "s1", User: "bob", AuthTime: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	w := audit.NewWriter(a.Store, a.Logger, audit.Options{})
	if _, err := account.SetDisabled(ctx, a.Store, w, "user:admin", "bob", true); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	u, _ := a.Store.GetUser(ctx, "bob")
	if !u.Disabled {
		t.Fatal("user not disabled")
	}
	if got, err := a.Store.GetRefreshToken(ctx, "h1"); err != nil || !got.Revoked {
		t.Fatalf("refresh token after disable: %+v %v", got, err)
	}
	if _, err := a.Store.GetSession(ctx, "s1", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session after disable: %v", err)
	}
	events, _, err := a.Store.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range events {
		seen = append(seen, e.Event+" "+e.User+" "+e.Outcome+" "+e.Detail)
	}
	// The tokens are bob's; the change is the administrator's.
	want := []string{"user.disabled user:admin success user bob", "token.revoked bob success user disabled: 1 refresh tokens"}
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Fatalf("audit events (newest first)\n got %q\nwant %q", seen, want)
	}

	if _, err := account.SetDisabled(ctx, a.Store, nil, "user:admin", "bob", false); err != nil {
		t.Fatal(err)
	}
	if u, _ := a.Store.GetUser(ctx, "bob"); u.Disabled {
		t.Fatal("user not enabled again")
	}
	if _, err := account.SetDisabled(ctx, a.Store, nil, "user:admin", "nobody", true); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
}
