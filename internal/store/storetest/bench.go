package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// RunBenchmarks measures the store's hot paths: the reads on every token
// request, the audit write on every sign-in and the commits every flow
// step ends in. newStore must return a
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
	// The audit writer's group commits under load: batches of every size
	// from 1 to 100 in turn, each reported per event.
	b.Run("AppendAuditVarying", func(b *testing.B) {
		s := newStore(b)
		ctx := context.Background()
		events := make([]store.AuditEvent, 100)
		for i := range events {
			events[i] = store.AuditEvent{Event: "token.issued", Client: "load", RemoteAddr: "127.0.0.1",
				UserAgent: "wrk", Outcome: "success", Detail: "client_credentials"}
		}
		b.ReportAllocs()
		written, n := 0, 0
		for b.Loop() {
			n = n%len(events) + 1
			if err := s.AppendAudit(ctx, events[:n]...); err != nil {
				b.Fatal(err)
			}
			written += n
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(written), "ns/event")
	})
	b.Run("CreateInstance2Steps", func(b *testing.B) {
		s := newStore(b)
		ctx := context.Background()
		deployBench(b, s)
		c := benchCompleted()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c.Instance.ID = fmt.Sprintf("0190f3a0-0000-7000-8000-%012d", i)
			if _, err := s.CreateInstance(ctx, c); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("CommitInstance1Step", func(b *testing.B) {
		s := newStore(b)
		ctx := context.Background()
		deployBench(b, s)
		c := benchCompleted()
		c.Instance.ID = "0190f3a0-0000-7000-8000-000000000000"
		c.Instance.Status, c.Instance.Owner, c.Instance.LeaseUntil = store.StatusRunning, "server-a", time.Now().Add(time.Hour)
		c.Instance.Output, c.Instance.EndedAt = nil, time.Time{}
		if _, err := s.CreateInstance(ctx, c); err != nil {
			b.Fatal(err)
		}
		c.ExpectOwner = "server-a"
		step := c.Steps[1]
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			step.Seq = 3 + i
			c.Instance.Seq = step.Seq
			c.Steps = []store.StepRecord{step}
			if err := s.CommitInstance(ctx, c); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func deployBench(b *testing.B, s store.Store) {
	b.Helper()
	if _, err := s.DeployFlow(context.Background(), store.FlowVersion{Name: "bench", Source: []byte("name: bench\n")}); err != nil {
		b.Fatal(err)
	}
}

// benchCompleted is an instance of a two-step flow (an http call, then
// return) that ran to its end in one go: the instance row and two step
// records in one transaction.
func benchCompleted() store.InstanceCommit {
	t0 := time.Now().UTC()
	return store.InstanceCommit{
		Instance: store.Instance{
			Workflow: "bench", Version: 1, Status: store.StatusCompleted, StartedBy: "client:portal",
			Starter:   []byte(`{"sub":"portal","roles":["invoker"]}`),
			Input:     []byte(`{"amount":120,"currency":"EUR","note":"conference travel"}`),
			Vars:      []byte(`{}`),
			Output:    []byte(`{"status":200,"headers":{"content-type":"application/json"},"body":{"id":"A-17","ok":true}}`),
			Seq:       2,
			State:     []byte(`{"fetch":{"status":200,"body":{"id":"A-17","token":"eyJhbGciOiJFUzI1NiJ9.e30.sig"}}}`),
			StartedAt: t0, UpdatedAt: t0.Add(40 * time.Millisecond), EndedAt: t0.Add(40 * time.Millisecond),
		},
		Steps: []store.StepRecord{
			{Seq: 1, StepID: "fetch", Type: "http", Status: store.StepCompleted, Attempt: 1, StartedAt: t0,
				EndedAt: t0.Add(39 * time.Millisecond), Input: []byte(`{"method":"POST","url":"https://erp.example/api/expenses"}`),
				Output: []byte(`{"status":200,"body":{"id":"A-17","token":"***"}}`)},
			{Seq: 2, StepID: "done", Type: "return", Status: store.StepCompleted, Attempt: 1,
				StartedAt: t0.Add(39 * time.Millisecond), EndedAt: t0.Add(40 * time.Millisecond),
				Output: []byte(`{"status":200}`)},
		},
	}
}

func seedClients(b *testing.B, s store.Store, n int) {
	b.Helper()
	for i := range n {
		if err := s.CreateClient(context.Background(), fullClient(fmt.Sprintf("client-%03d", i))); err != nil {
			b.Fatal(err)
		}
	}
}
