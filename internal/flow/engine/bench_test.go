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

const fiveSteps = `
name: five
permissions: {start: ["role:employee"]}
input:
  n: {type: number, required: true}
steps:
  - id: a
    type: set
    vars: {x: "${{ input.n + 1 }}"}
  - id: b
    type: switch
    cases:
      - when: "${{ vars.x > 1000000 }}"
        next: e
  - id: c
    type: set
    vars: {y: "${{ vars.x * 2 }}"}
  - id: d
    type: set
    vars: {z: "${{ vars.y + vars.x }}"}
  - id: e
    type: return
    body: {z: "${{ vars.z }}"}
`

// benchStart starts and completes five-step instances from parallel
// goroutines, as the REST API would: the figure is instances per second
// of the engine and the store, without HTTP and token checks.
func benchStart(b *testing.B, s backend.Store) {
	e, err := engine.New(b.Context(), engine.Config{Store: s, Queue: openQueue(b, s)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		// b.Context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Close(ctx)
	})
	if _, _, err := e.Deploy(b.Context(), []byte(fiveSteps), "five.yaml", "bench"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			st, err := e.StartInstance(b.Context(), engine.StartRequest{Workflow: "five", Input: map[string]any{"n": 1}, Caller: alice})
			if err != nil {
				b.Error(err)
				return
			}
			if st.Instance.Status != store.StatusCompleted {
				b.Errorf("instance %s", st.Instance.Status)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "instances/s")
}

func BenchmarkStartFiveStepsSQLite(b *testing.B) {
	s, err := openBenchSQLite(b)
	if err != nil {
		b.Fatal(err)
	}
	benchStart(b, s)
}

func BenchmarkStartFiveStepsPostgres(b *testing.B) {
	s, err := postgres.Open(b.Context(), pgtest.DSN(b), store.Options{Sealer: storetest.NewSealer(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	benchStart(b, s)
}
