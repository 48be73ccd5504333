package main

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil/pgtest"
)

// How long recovery takes after a kill -9, measured on the real binary:
// five kills per case, the median and the spread logged. A measurement,
// not a test (timings on a shared machine assert nothing), so it runs only
// with FLOWGATE_MEASURE_RECOVERY=1:
//
//	FLOWGATE_MEASURE_RECOVERY=1 go test ./cmd/flowgate -run TestMeasureRecovery -v
func TestMeasureRecovery(t *testing.T) {
	if os.Getenv("FLOWGATE_MEASURE_RECOVERY") == "" {
		t.Skip("a measurement: set FLOWGATE_MEASURE_RECOVERY=1 to run it")
	}
	const kills = 5
	t.Run("overdue wait, one SQLite server, from /readyz", func(t *testing.T) {
		report(t, killDuringWait(t, kills, "2s", 3*time.Second, func(called, ready, _ time.Time) time.Duration {
			return called.Sub(ready)
		}))
	})
	t.Run("wait due after the restart, one SQLite server, late by", func(t *testing.T) {
		report(t, killDuringWait(t, kills, "6s", 0, func(called, _, until time.Time) time.Duration {
			return called.Sub(until)
		}))
	})
	t.Run("orphaned http step, one SQLite server, from /readyz", func(t *testing.T) {
		o := newOneServer(t, map[string]string{"trio": trioFlow}, 2*time.Second)
		s := o.start(t)
		var took []time.Duration
		for range kills {
			token := robotToken(t, s.base)
			id := startInstance(t, s.base, token, "trio", map[string]any{"base": o.tg.srv.URL})
			awaitCall(t, o.tg)
			kill9(t, s)
			s = o.start(t)
			ready := time.Now()
			took = append(took, awaitCall(t, o.tg).Sub(ready))
			waitInstance(t, s.base, robotToken(t, s.base), id, time.Minute, "completed")
		}
		report(t, took)
	})
	// The server killed is each time the one that has run longer, the job
	// queue's leader (the first to start is elected, the survivor takes
	// over): recovery that waited for a new leader would show it here.
	t.Run("takeover by the other of two PostgreSQL servers, from the kill", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		env := []string{"FLOWGATE_SECRET_KEY=" + durableKey, "FLOWGATE_DATABASE=" + dsn}
		flows := map[string]string{"trio": trioFlow}
		tg := newTarget(t, 2*time.Second)
		var dirs [2]string
		var args [2][]string
		var servers [2]*serving
		for i := range servers {
			dirs[i] = t.TempDir()
			args[i] = flowsHome(t, dirs[i], flows)
			servers[i] = startServe(t, dirs[i], env, args[i]...)
			time.Sleep(3 * time.Second) // the first one is elected
		}
		var took []time.Duration
		for i := range kills {
			victim, other := servers[i%2], servers[1-i%2]
			token := robotToken(t, victim.base)
			id := startInstance(t, victim.base, token, "trio", map[string]any{"base": tg.srv.URL})
			awaitCall(t, tg)
			killed := time.Now()
			kill9(t, victim)
			took = append(took, awaitCall(t, tg).Sub(killed))
			waitInstance(t, other.base, token, id, time.Minute, "completed")
			servers[i%2] = startServe(t, dirs[i%2], env, args[i%2]...)
		}
		report(t, took)
	})
}

// killDuringWait kills a single server while an instance waits nap,
// restarts it after outage and measures, from when the wait's next step
// called the target, when the server was ready again and the wait's
// deadline, once per kill.
func killDuringWait(t *testing.T, kills int, nap string, outage time.Duration, measure func(called, ready, until time.Time) time.Duration) []time.Duration {
	o := newOneServer(t, map[string]string{"napper": napFlow(nap)}, 0)
	s := o.start(t)
	var got []time.Duration
	for range kills {
		token := robotToken(t, s.base)
		id := startInstance(t, s.base, token, "napper", map[string]any{"base": o.tg.srv.URL})
		waitInstance(t, s.base, token, id, 20*time.Second, "waiting")
		kill9(t, s)
		time.Sleep(outage)
		s = o.start(t)
		ready := time.Now()
		called := awaitCall(t, o.tg)
		token = robotToken(t, s.base)
		waitInstance(t, s.base, token, id, time.Minute, "completed")
		got = append(got, measure(called, ready, waitUntil(t, s.base, token, id)))
	}
	return got
}

// napFlow waits nap, then calls the target's /slow.
func napFlow(nap string) string {
	return `
name: napper
permissions: {start: ["client:robot"]}
input:
  base: {type: string, required: true}
steps:
  - id: nap
    type: wait
    duration: ` + nap + `
  - id: slow
    type: http
    url: "${{ input.base }}/slow"
  - id: done
    type: return
`
}

// awaitCall waits for the next call to the target's /slow and returns
// when it came.
func awaitCall(t *testing.T, tg *target) time.Time {
	t.Helper()
	select {
	case at := <-tg.slowIn:
		return at
	case <-time.After(2 * time.Minute):
		t.Fatal("no call within two minutes")
		return time.Time{}
	}
}

// waitUntil is the deadline of the instance's wait, from its record.
func waitUntil(t *testing.T, base, token, id string) time.Time {
	t.Helper()
	_, items := completedSteps(t, base, token, id)
	for _, e := range items {
		if e["step"] == "nap" {
			until, _ := e["input"].(map[string]any)["until"].(string)
			at, err := time.Parse(time.RFC3339Nano, until)
			if err != nil {
				t.Fatalf("the wait's record: %v (%v)", err, e)
			}
			return at
		}
	}
	t.Fatalf("no wait record in %v", items)
	return time.Time{}
}

func report(t *testing.T, d []time.Duration) {
	t.Helper()
	slices.Sort(d)
	for i := range d {
		d[i] = d[i].Round(10 * time.Millisecond)
	}
	t.Logf("median %v of %d: %v", d[len(d)/2], len(d), d)
}
