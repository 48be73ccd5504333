package audit

import (
	"strings"
	"testing"
	"time"
)

func TestParseQuery(t *testing.T) {
	now := time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)
	q := map[string]string{"since": "1d12h", "until": "2025-03-14T13:00:00+01:00", "user": "alice", "client": "portal",
		"event": LoginFailure, "outcome": OutcomeFailure}
	f, errs := ParseQuery(func(k string) string { return q[k] }, now)
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	if !f.Since.Equal(now.Add(-36*time.Hour)) || !f.Until.Equal(now) || f.User != "alice" || f.Client != "portal" ||
		f.Event != LoginFailure || f.Outcome != OutcomeFailure {
		t.Errorf("filter %+v", f)
	}
	// Every problem at once, each naming its field.
	q = map[string]string{"since": "yesterday", "until": "-5m", "event": "login", "outcome": "maybe"}
	_, errs = ParseQuery(func(k string) string { return q[k] }, now)
	var fields []string
	for _, e := range errs {
		fields = append(fields, e.Field)
	}
	if strings.Join(fields, ",") != "since,until,event,outcome" {
		t.Errorf("problems of fields %v: %v", fields, errs)
	}
	if f, errs := ParseQuery(func(string) string { return "" }, now); len(errs) != 0 || !f.Since.IsZero() || f.Event != "" {
		t.Errorf("an empty query: %+v %v", f, errs)
	}
}
