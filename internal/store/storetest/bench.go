package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/flowgate/flowgate/internal/store"
)

// RunBenchmarks measures the store's hot paths: the reads on every token
// request and the audit write on every sign-in. newStore must return a
// fresh store and arrange for it to be closed.
func RunBenchmarks(b *testing.B, newStore func(b *testing.B) store.Store) {
	b.Run("GetClient", func(b *testing.B) {
		s := newStore(b)
		ctx := context.Background()
		seedClients(b, s, 100)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := s.GetClient(ctx, fmt.Sprintf("client-%03d", i%100)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("GetUser", func(b *testing.B) {
		s := newStore(b)
		ctx := context.Background()
		for i := range 100 {
			u := fullUser(fmt.Sprintf("user-%03d", i))
			if err := s.CreateUser(ctx, u); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := s.GetUser(ctx, fmt.Sprintf("user-%03d", i%100)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("AppendAudit1", func(b *testing.B) {
		s := newStore(b)
		ctx := context.Background()
		e := store.AuditEvent{Event: "login", User: "alice", Client: "portal", RemoteAddr: "192.0.2.1:4711",
			UserAgent: "Mozilla/5.0", Outcome: "success"}
		b.ReportAllocs()
		for b.Loop() {
			if err := s.AppendAudit(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendAudit100", func(b *testing.B) {
		s := newStore(b)
		ctx := context.Background()
		events := make([]store.AuditEvent, 100)
		for i := range events {
			events[i] = store.AuditEvent{Event: "login", User: "alice", Client: "portal", Outcome: "success"}
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := s.AppendAudit(ctx, events...); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func seedClients(b *testing.B, s store.Store, n int) {
	b.Helper()
	for i := range n {
		if err := s.CreateClient(context.Background(), fullClient(fmt.Sprintf("client-%03d", i))); err != nil {
			b.Fatal(err)
		}
	}
}
