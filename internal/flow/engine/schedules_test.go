package engine_test

import (
	"context"
	"database/sql"
	"os"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
)

// scheduledFlow fires every `every` seconds (the optional seconds field).
func scheduledFlow(name string, every int, missed string) string {
	return `
name: ` + name + `
input:
  report: {type: string, required: true}
triggers:
  - schedule: "*/` + itoa(every) + ` * * * * *"
    input: {report: daily}
    missed: ` + missed + `
steps:
  - {id: done, type: return, body: {report: "${{ input.report }}", by: "${{ user.id }}"}}
`
}

type claimRow struct {
	fireAt   time.Time
	instance string
	catchUp  bool
}

// claims reads a flow's schedule claims, oldest first.
func claims(t *testing.T, s backend.Store, workflow string) []claimRow {
	t.Helper()
	db := s.(interface{ ReadDB() *sql.DB }).ReadDB()
	q := `SELECT fire_at, instance_id, catch_up FROM schedule_claims WHERE workflow = ? ORDER BY fire_at`
	if s.Backend() == "postgres" {
		q = `SELECT fire_at, instance_id, catch_up FROM schedule_claims WHERE workflow = $1 ORDER BY fire_at`
	}
	rows, err := db.QueryContext(t.Context(), q, workflow)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []claimRow
	for rows.Next() {
		var us int64
		var c claimRow
		if err := rows.Scan(&us, &c.instance, &c.catchUp); err != nil {
			t.Fatal(err)
		}
		c.fireAt = time.UnixMicro(us).UTC()
		out = append(out, c)
	}
	return out
}

func instancesOf(t *testing.T, s store.Store, workflow string) []store.Instance {
	t.Helper()
	var out []store.Instance
	cursor := ""
	for {
		page, next, err := s.ListInstances(t.Context(), store.InstanceFilter{Workflow: workflow}, store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		cursor = next
	}
}

func startEngines(t *testing.T, stores []backend.Store) []*engine.Engine {
	var es []*engine.Engine
	for _, s := range stores {
		e, err := engine.New(t.Context(), engine.Config{Store: s, Queue: openQueue(t, s), Egress: loopback(), Lease: 2 * time.Second, Sweep: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	return es
}

func closeEngines(t *testing.T, es []*engine.Engine) {
	for _, e := range es {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := e.Close(ctx); err != nil {
			t.Error(err)
		}
		cancel()
	}
}

// Every server on one database runs the schedule; each time starts
// exactly one instance, as the schedule's principal with its input. After
// every server was stopped across two times, run_once starts one instance
// for them and skip none, and the times after the restart go on.
func TestScheduleOneInstancePerTime(t *testing.T) {
	forEachBackend(t, func(t *testing.T, stores []backend.Store) {
		// Two servers on PostgreSQL over a minute; one SQLite server for
		// less.
		run := 12 * time.Second
		if len(stores) > 1 {
			run = time.Minute
		}
		if testing.Short() {
			run = 6 * time.Second
		}
		es := startEngines(t, stores)
		deploy(t, es[0], scheduledFlow("catch-up", 2, "run_once"))
		deploy(t, es[0], scheduledFlow("skipper", 2, "skip"))
		began := time.Now()
		time.Sleep(run)
		closeEngines(t, es)
		stopped := time.Now()
		time.Sleep(4500 * time.Millisecond) // at least two times pass with no server
		restarting := time.Now()
		es = startEngines(t, stores)
		restarted := time.Now()
		time.Sleep(4 * time.Second)
		closeEngines(t, es)

		var lags []time.Duration
		for _, name := range []string{"catch-up", "skipper"} {
			cs := claims(t, stores[0], name)
			insts := instancesOf(t, stores[0], name)
			if len(cs) != len(insts) {
				t.Fatalf("%s: %d claims, %d instances", name, len(cs), len(insts))
			}
			byID := map[string]store.Instance{}
			for _, in := range insts {
				byID[in.ID] = in
				if in.StartedBy != "schedule:"+name || in.Status != store.StatusCompleted || string(in.Input) != `{"report":"daily"}` {
					t.Errorf("%s instance: by %s, %s, input %s", name, in.StartedBy, in.Status, in.Input)
				}
			}
			// Times before the restart began can only have been started as
			// the catch-up; a time between the servers' start and the end
			// of startEngines may be either (missed by a server whose loop
			// had not begun, or on time).
			var during, catchUps, after int
			for i, c := range cs {
				in, ok := byID[c.instance]
				if !ok {
					t.Fatalf("%s: claim of %v names instance %s, which does not exist", name, c.fireAt, c.instance)
				}
				if i > 0 && c.fireAt.Sub(cs[i-1].fireAt) < 2*time.Second {
					t.Errorf("%s: times %v and %v are closer than the schedule", name, cs[i-1].fireAt, c.fireAt)
				}
				switch {
				case c.catchUp:
					catchUps++
					if c.fireAt.Before(stopped) || !c.fireAt.Before(restarted) || !in.StartedAt.After(restarting) {
						t.Errorf("%s: the catch-up is for %v, started %v; the servers stopped %v and started again %v–%v",
							name, c.fireAt, in.StartedAt, stopped, restarting, restarted)
					}
				case c.fireAt.Before(stopped):
					during++
					lags = append(lags, in.StartedAt.Sub(c.fireAt))
				case c.fireAt.Before(restarting):
					t.Errorf("%s: an instance for %v, while no server ran, that is not the catch-up", name, c.fireAt)
				default:
					after++
					lags = append(lags, in.StartedAt.Sub(c.fireAt))
				}
			}
			want := int(stopped.Sub(began) / (2 * time.Second))
			if during < want-1 || during > want+1 {
				t.Errorf("%s: %d instances while running %v, want about %d", name, during, stopped.Sub(began), want)
			}
			if want := map[string]int{"catch-up": 1, "skipper": 0}[name]; catchUps != want {
				t.Errorf("%s: %d instances for the times missed while stopped, want %d", name, catchUps, want)
			}
			if after < 1 {
				t.Errorf("%s: no instance after the restart", name)
			}
		}
		p50, p99 := percentiles(lags)
		t.Logf("%d scheduled starts on %d server(s): scheduled time to instance start p50 %v, p99 %v", len(lags), len(stores), p50, p99)
		for _, l := range lags {
			if l < 0 {
				t.Errorf("an instance started %v before its time", -l)
			}
		}
	})
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := slices.Clone(d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)*50/100], s[min(len(s)*99/100, len(s)-1)]
}

// A new version of the flow replaces its schedule; the next times are
// listed for the API.
func TestScheduleNewVersionReplaces(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, scheduledFlow("versioned", 2, "skip"))
	infos, err := e.NextRuns(t.Context(), "versioned", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || len(infos[0].Next) != 3 || infos[0].Next[1].Sub(infos[0].Next[0]) != 2*time.Second || infos[0].Timezone != "UTC" {
		t.Fatalf("next runs: %+v", infos)
	}
	time.Sleep(2500 * time.Millisecond)
	deploy(t, e, `
name: versioned
input:
  report: {type: string, required: true}
steps:
  - {id: done, type: return}
`)
	time.Sleep(2 * time.Second) // a pass sees the new version
	n := len(claims(t, s, "versioned"))
	if n == 0 {
		t.Fatal("the first version never fired")
	}
	time.Sleep(3 * time.Second)
	if m := len(claims(t, s, "versioned")); m != n {
		t.Errorf("the replaced schedule still fired: %d claims, then %d", n, m)
	}
	if infos, _ := e.NextRuns(t.Context(), "versioned", 3); len(infos) != 0 {
		t.Errorf("next runs of a flow without schedules: %+v", infos)
	}
}

// FLOWGATE_MEASURE_SCHEDULE=1: 100 times of a schedule every second on one
// server; the scheduled time to instance start, p50 and p99.
func TestMeasureScheduleJitter(t *testing.T) {
	if os.Getenv("FLOWGATE_MEASURE_SCHEDULE") == "" {
		t.Skip("set FLOWGATE_MEASURE_SCHEDULE=1 to measure (100 s)")
	}
	forEachBackend(t, func(t *testing.T, stores []backend.Store) {
		es := startEngines(t, stores)
		deploy(t, es[0], scheduledFlow("jitter", 1, "skip"))
		for len(claims(t, stores[0], "jitter")) < 100 {
			time.Sleep(time.Second)
		}
		closeEngines(t, es)
		var lags []time.Duration
		byID := map[string]store.Instance{}
		for _, in := range instancesOf(t, stores[0], "jitter") {
			byID[in.ID] = in
		}
		for _, c := range claims(t, stores[0], "jitter")[:100] {
			lags = append(lags, byID[c.instance].StartedAt.Sub(c.fireAt))
		}
		p50, p99 := percentiles(lags)
		t.Logf("schedule jitter over 100 times on %d server(s): p50 %v, p99 %v", len(stores), p50, p99)
	})
}

func itoa(n int) string { return string(rune('0' + n)) }
