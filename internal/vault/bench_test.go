package vault_test

import (
	"context"
	"testing"
)

// Reading a valid token from the vault on SQLite: one row read by primary
// key and both tokens opened (AES-256-GCM with the key ring). Target:
// under 20 µs/op.
func BenchmarkVaultToken(b *testing.B) {
	e := newEnv(b, envOptions{})
	tok := e.login(b, "alice")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		at, err := e.v.Token(ctx, "alice", server)
		if err != nil {
			b.Fatal(err)
		}
		if at.Token != tok.AccessToken {
			b.Fatal("another token")
		}
	}
}

// BenchmarkVaultRefresh is the refresh path against the local provider:
// the row locked, the refresh grant (rotation included), the new tokens
// sealed and committed.
func BenchmarkVaultRefresh(b *testing.B) {
	e := newEnv(b, envOptions{})
	e.login(b, "alice")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.v.ForceRefresh(ctx, "alice", server); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if s := e.peer.Stats(b); s.RefreshErrors != 0 {
		b.Fatalf("%d refreshes refused", s.RefreshErrors)
	}
}
