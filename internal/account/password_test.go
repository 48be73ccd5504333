package account_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/account"
	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
)

// A password change applies the one policy before anything is written,
// stores a hash that verifies, and is audited as the user's update
// naming the password, never its value.
func TestSetPassword(t *testing.T) {
	ctx := context.Background()
	a := openApp(t)
	now := time.Now().UTC()
	if err := a.Store.CreateUser(ctx, store.User{Username: "bob", PasswordHash: "old", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	w := audit.NewWriter(a.Store, a.Logger, audit.Options{})
	for _, bad := range []string{"", "short", "seven77", strings.Repeat("x", account.MaxPasswordLen+1)} {
		if err := account.SetPassword(ctx, a.Store, w, a.Hasher, "user:bob", "bob", bad); !errors.Is(err, account.ErrPasswordPolicy) {
			t.Errorf("password of %d bytes: %v, want the policy's refusal", len(bad), err)
		}
	}
	if u, _ := a.Store.GetUser(ctx, "bob"); u.PasswordHash != "old" {
		t.Fatal("a refused password changed the hash")
	}
	// Eight characters, counted as characters, not bytes.
	if err := account.SetPassword(ctx, a.Store, w, a.Hasher, "user:bob", "bob", "éééééééé"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	u, _ := a.Store.GetUser(ctx, "bob")
	if !a.Hasher.Verify("éééééééé", u.PasswordHash) {
		t.Fatal("the new password does not verify")
	}
	events, _, err := a.Store.ListAudit(ctx, store.AuditFilter{})
	if err != nil || len(events) != 1 || events[0].Event != audit.UserUpdated || events[0].User != "user:bob" || events[0].Detail != "user bob: password" {
		t.Fatalf("audit: %+v %v", events, err)
	}
	if err := account.SetPassword(ctx, a.Store, nil, a.Hasher, "user:x", "nobody", "long-enough-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
}

// A user ends one of their own sessions by its handle; another user's
// handle finds nothing and ends nothing.
func TestEndSession(t *testing.T) {
	ctx := context.Background()
	a := openApp(t)
	now := time.Now().UTC()
	for _, s := range []store.Session{
		{IDHash: "b1", User: "bob", AuthTime: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)},
		{IDHash: "b2", User: "bob", AuthTime: now, LastSeen: now.Add(time.Second), ExpiresAt: now.Add(time.Hour)},
		{IDHash: "c1", User: "carol", AuthTime: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)},
	} {
		if err := a.Store.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	handle := func(id string) string { return account.SessionHandle(store.Session{IDHash: id}) }
	if handle("b1") == handle("b2") || len(handle("b1")) != 16 || strings.Contains(handle("b1"), "b1") {
		t.Fatalf("handles: %q %q", handle("b1"), handle("b2"))
	}
	w := audit.NewWriter(a.Store, a.Logger, audit.Options{})
	if err := account.EndSession(ctx, a.Store, w, "user:bob", "bob", handle("c1"), now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ending carol's session as bob: %v", err)
	}
	if err := account.EndSession(ctx, a.Store, w, "user:bob", "bob", handle("b1"), now); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	left, err := a.Store.ListUserSessions(ctx, "bob", now)
	if err != nil || len(left) != 1 || left[0].IDHash != "b2" {
		t.Fatalf("bob's sessions after ending b1: %+v %v", left, err)
	}
	if _, err := a.Store.GetSession(ctx, "c1", now); err != nil {
		t.Fatalf("carol's session: %v", err)
	}
	events, _, _ := a.Store.ListAudit(ctx, store.AuditFilter{})
	if len(events) != 1 || events[0].Event != audit.Logout || !strings.Contains(events[0].Detail, handle("b1")) {
		t.Fatalf("audit: %+v", events)
	}
}
