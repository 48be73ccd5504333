package audit

import (
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/duration"
	"github.com/flowgate/flowgate/internal/store"
)

// QueryError is one value of a query that cannot be used.
type QueryError struct {
	// Field is the parameter's name (since, event, …).
	Field   string
	Message string
}

func (e *QueryError) Error() string { return e.Message }

// ParseQuery turns a query of the audit log (the admin API's parameters,
// the management site's filter form) into a filter: since and until take
// an RFC 3339 time or a duration ago (24h, 7d); event must be one of
// Events() and outcome success or failure, since an unknown one would
// match nothing and an empty list would read as "it never happened". It
// returns every problem, each naming its field. get reads a parameter
// ("" when absent).
func ParseQuery(get func(string) string, now time.Time) (store.AuditFilter, []*QueryError) {
	var (
		f    = store.AuditFilter{User: get("user"), Client: get("client"), Event: get("event"), Outcome: get("outcome")}
		errs []*QueryError
	)
	for _, tf := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		s := strings.TrimSpace(get(tf.name))
		if s == "" {
			continue
		}
		t, ok := timeOrAgo(s, now)
		if !ok {
			errs = append(errs, &QueryError{tf.name, tf.name + " must be an RFC 3339 time (2025-01-31T12:00:00Z) or a duration ago (24h, 7d)"})
			continue
		}
		*tf.dst = t
	}
	if f.Event != "" && !IsEvent(f.Event) {
		errs = append(errs, &QueryError{"event", "event " + quote(f.Event) + " is not an audit event; the events are: " + strings.Join(Events(), ", ")})
	}
	if f.Outcome != "" && f.Outcome != OutcomeSuccess && f.Outcome != OutcomeFailure {
		errs = append(errs, &QueryError{"outcome", "outcome " + quote(f.Outcome) + " is neither " + OutcomeSuccess + " nor " + OutcomeFailure})
	}
	return f, errs
}

// timeOrAgo takes RFC 3339, or a duration meaning "that long ago" (30m,
// 24h, 7d), as `flowgate audit --since` does.
func timeOrAgo(s string, now time.Time) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), true
	}
	if d, err := duration.Positive(s); err == nil {
		return now.Add(-d).UTC(), true
	}
	return time.Time{}, false
}

// quote shows a value typed by someone, cut short: it is echoed in an
// error message.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}
