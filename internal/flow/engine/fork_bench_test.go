package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
	"github.com/flowgate/flowgate/internal/store/postgres"
	"github.com/flowgate/flowgate/internal/store/storetest"
	"github.com/flowgate/flowgate/internal/testutil/pgtest"
)

const parallelFour = `
name: four
permissions: {start: ["role:employee"]}
steps:
  - id: fan
    type: parallel
    branches:
      a: [{id: sa, type: set, vars: {a: 1}}]
      b: [{id: sb, type: set, vars: {b: 2}}]
      c: [{id: sc, type: set, vars: {c: 3}}]
      d: [{id: sd, type: set, vars: {d: 4}}]
  - {id: done, type: return, body: {sum: "${{ vars.a + vars.b + vars.c + vars.d }}"}}
`

const foreachHundred = `
name: hundred
permissions: {start: ["role:employee"]}
steps:
  - id: each
    type: foreach
    items: "${{ 1..100 }}"
    as: n
    steps: [{id: twice, type: set, vars: {last: "${{ n * 2 }}"}}]
  - {id: done, type: return, body: {count: "${{ len(steps.each.output.items) }}"}}
`

// benchFork runs instances of a flow with a parallel or foreach step to
// completion from parallel goroutines: instances per second of the whole
// fork and join, branch instances included.
func benchFork(b *testing.B, s backend.Store, src, name string) {
	e, err := engine.New(b.Context(), engine.Config{Store: s, Queue: openQueue(b, s)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Close(ctx)
	})
	if _, _, err := e.Deploy(b.Context(), []byte(src), name+".yaml", "bench"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := e.Invoke(b.Context(), engine.StartRequest{Workflow: name, Caller: alice}, false)
			if err != nil {
				b.Error(err)
				return
			}
			if res.Instance.Status != store.StatusCompleted {
				b.Errorf("instance %s %q", res.Instance.Status, res.Instance.Error)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "instances/s")
}

func openBenchPostgres(b *testing.B) backend.Store {
	s, err := postgres.Open(b.Context(), pgtest.DSN(b), store.Options{Sealer: storetest.NewSealer(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

func BenchmarkParallelFourSQLite(b *testing.B) {
	s, err := openBenchSQLite(b)
	if err != nil {
		b.Fatal(err)
	}
	benchFork(b, s, parallelFour, "four")
}

func BenchmarkParallelFourPostgres(b *testing.B) {
	benchFork(b, openBenchPostgres(b), parallelFour, "four")
}

func BenchmarkForeachHundredSQLite(b *testing.B) {
	s, err := openBenchSQLite(b)
	if err != nil {
		b.Fatal(err)
	}
	benchFork(b, s, foreachHundred, "hundred")
}

func BenchmarkForeachHundredPostgres(b *testing.B) {
	benchFork(b, openBenchPostgres(b), foreachHundred, "hundred")
}
