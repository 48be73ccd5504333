package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// AppendAudit writes events in one transaction. A zero Time becomes now.
// One event is a single INSERT (atomic on its own); more are sent as
// multi-row INSERTs of fixed sizes (see auditSizes), so a group commit of
// a few hundred events costs a few statements, not a few hundred round
// trips, and none of them is compiled anew.
func (s *Store) AppendAudit(ctx context.Context, events ...store.AuditEvent) error {
	switch len(events) {
	case 0:
		return nil
	case 1:
		args := auditArgs(make([]any, 0, 8), events, now())
		var err error
		if s.insertAuditStmt != nil {
			_, err = s.insertAuditStmt.ExecContext(ctx, args...)
		} else {
			_, err = s.write.ExecContext(ctx, s.q.insertAudit, args...)
		}
		if err != nil {
			return fmt.Errorf("append audit event: %w", err)
		}
		return nil
	}

	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append %d audit events: begin: %w", len(events), err)
	}
	defer func() { _ = tx.Rollback() }() // no-op after Commit
	t := now()
	args := make([]any, 0, 8*min(len(events), 2<<(auditSizes-1)))
	for rest := events; len(rest) > 0; {
		n, stmt, q := 1, s.insertAuditStmt, s.q.insertAudit
		for i := auditSizes - 1; i >= 0; i-- {
			if 2<<i <= len(rest) {
				n, stmt, q = 2<<i, s.insertAuditRowsStmt[i], s.q.insertAuditRows[i]
				break
			}
		}
		args = auditArgs(args[:0], rest[:n], t)
		if _, err := txExec(ctx, tx, stmt, q, args...); err != nil {
			return fmt.Errorf("append %d audit events: %w", len(events), err)
		}
		rest = rest[n:]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append %d audit events: commit: %w", len(events), err)
	}
	return nil
}

func auditArgs(args []any, events []store.AuditEvent, now time.Time) []any {
	for _, e := range events {
		ts := micros(now)
		if !e.Time.IsZero() {
			ts = micros(e.Time)
		}
		args = append(args, ts, e.Event, e.User, e.Client, e.RemoteAddr, e.UserAgent, e.Outcome, e.Detail)
	}
	return args
}

// ListAudit pages through matching events, newest first: by time, then by
// id among events of the same microsecond. Since is inclusive, Until
// exclusive, so consecutive windows neither overlap nor leave gaps.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, string, error) {
	p := f.Page.Normalize()
	var (
		where []string
		args  = make([]any, 0, 9)
	)
	if !f.Since.IsZero() {
		where = append(where, "ts >= ?")
		args = append(args, micros(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "ts < ?")
		args = append(args, micros(f.Until))
	}
	if f.User != "" {
		// The second term is implied by the first; it lets the planner use
		// the partial index on username (migration 00006).
		where = append(where, "username = ? AND username <> ''")
		args = append(args, f.User)
	}
	if f.Client != "" {
		where = append(where, "client_id = ?")
		args = append(args, f.Client)
	}
	if f.Event != "" {
		where = append(where, "event = ?")
		args = append(args, f.Event)
	}
	if f.Outcome != "" {
		where = append(where, "outcome = ?")
		args = append(args, f.Outcome)
	}
	if p.Cursor != "" {
		ts, id, err := decodeAuditCursor(p.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("list audit: %w", err)
		}
		// A row value, not "ts < ? OR (ts = ? AND id < ?)": PostgreSQL
		// makes the row value an index condition, but the OR only a
		// filter, which reads every newer row first. SQLite does a range
		// search on (ts, id) for either.
		where = append(where, "(ts, id) < (?, ?)")
		args = append(args, ts, id)
	}
	var b strings.Builder
	b.WriteString("SELECT " + auditCols + " FROM audit_events")
	if len(where) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(where, " AND "))
	}
	b.WriteString(" ORDER BY ts DESC, id DESC LIMIT ?")
	out, next, err := queryPage(ctx, s, s.q.rebind(b.String()), args, p.Limit, scanAuditEvent,
		func(e store.AuditEvent) string {
			return strconv.FormatInt(micros(e.Time), 10) + ":" + strconv.FormatInt(e.ID, 10)
		})
	if err != nil {
		return nil, "", fmt.Errorf("list audit: %w", err)
	}
	return out, next, nil
}

func scanAuditEvent(sc scanner) (store.AuditEvent, error) {
	var (
		e  store.AuditEvent
		ts int64
	)
	if err := sc.Scan(&e.ID, &ts, &e.Event, &e.User, &e.Client, &e.RemoteAddr, &e.UserAgent,
		&e.Outcome, &e.Detail); err != nil {
		return e, err
	}
	e.Time = fromMicros(ts)
	return e, nil
}

func decodeAuditCursor(c string) (ts, id int64, err error) {
	key, err := store.DecodeCursor(c)
	if err != nil {
		return 0, 0, err
	}
	tsStr, idStr, ok := strings.Cut(key, ":")
	if !ok {
		return 0, 0, store.ErrInvalidCursor
	}
	if ts, err = strconv.ParseInt(tsStr, 10, 64); err != nil {
		return 0, 0, store.ErrInvalidCursor
	}
	if id, err = strconv.ParseInt(idStr, 10, 64); err != nil {
		return 0, 0, store.ErrInvalidCursor
	}
	return ts, id, nil
}
