package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
)

// BenchmarkRecord measures Record from many goroutines, as the token
// endpoint calls it, on SQLite. Close is inside the timing, so ns/op and
// events/s are the rate at which events are durably written, not only
// queued.
func BenchmarkRecord(b *testing.B) {
	st := openStore(b, sqliteDSN(b))
	c := &counting{AuditLog: st}
	w := audit.NewWriter(c, nil, audit.Options{})
	e := store.AuditEvent{Event: audit.TokenIssued, User: "alice", Client: "portal", RemoteAddr: "192.0.2.1",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", Detail: "grant_type=authorization_code"}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(8) // many request goroutines per core, like a busy server
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.Record(ctx, e)
		}
	})
	if err := w.Close(ctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	s := w.Stats()
	if s.Written != uint64(b.N) {
		b.Fatalf("written %d of %d (stats %+v)", s.Written, b.N, s)
	}
	b.ReportMetric(float64(s.Written)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(s.Written)/float64(max(c.calls.Load(), 1)), "events/commit")
}
