package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// InstanceTotals counts in one statement: running and waiting read the
// (status, ended_at) index of migration 00018, failed its range.
func (s *Store) InstanceTotals(ctx context.Context, failedSince time.Time) (store.InstanceTotals, error) {
	var t store.InstanceTotals
	err := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT
		(SELECT COUNT(*) FROM instances WHERE status = 'running' AND branch = ''),
		(SELECT COUNT(*) FROM instances WHERE status = 'waiting' AND branch = ''),
		(SELECT COUNT(*) FROM instances WHERE status = 'failed' AND ended_at >= ? AND branch = '')`), micros(failedSince)).
		Scan(&t.Running, &t.Waiting, &t.Failed)
	if err != nil {
		return store.InstanceTotals{}, fmt.Errorf("count instances: %w", err)
	}
	return t, nil
}

// InstanceBuckets groups by the bucket number, (started_at - since) /
// width in whole microseconds, computed by the database.
func (s *Store) InstanceBuckets(ctx context.Context, since, until time.Time, width time.Duration) ([]store.Bucket, error) {
	if width < time.Microsecond {
		return nil, fmt.Errorf("count instances: bucket width %v is under a microsecond", width)
	}
	from, w := micros(since), width.Microseconds()
	rows, err := s.read.QueryContext(ctx, s.q.rebind(`SELECT (started_at - ?) / ?, status, COUNT(*) FROM instances
		WHERE started_at >= ? AND started_at < ? AND branch = '' GROUP BY 1, 2 ORDER BY 1, 2`), from, w, from, micros(until))
	if err != nil {
		return nil, fmt.Errorf("count instances: %w", err)
	}
	out, err := scanBuckets(rows, since, width)
	if err != nil {
		return nil, fmt.Errorf("count instances: %w", err)
	}
	return out, nil
}

// CountOpenTasks reads the (status, serial) index.
func (s *Store) CountOpenTasks(ctx context.Context) (int64, error) {
	var n int64
	if err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM tasks WHERE status = 'open'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count open tasks: %w", err)
	}
	return n, nil
}

// CountOverdueTasks reads the partial index of open tasks by due time.
func (s *Store) CountOverdueTasks(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	q := s.q.rebind(`SELECT COUNT(*) FROM tasks WHERE status = 'open' AND due_at IS NOT NULL AND due_at < ?`)
	if err := s.read.QueryRowContext(ctx, q, micros(now)).Scan(&n); err != nil {
		return 0, fmt.Errorf("count overdue tasks: %w", err)
	}
	return n, nil
}

// AuditBuckets reads the (event, ts, id) index, one range per event.
func (s *Store) AuditBuckets(ctx context.Context, events []string, since, until time.Time, width time.Duration) ([]store.Bucket, error) {
	if width < time.Microsecond {
		return nil, fmt.Errorf("count audit events: bucket width %v is under a microsecond", width)
	}
	if len(events) == 0 {
		return nil, nil
	}
	from, w := micros(since), width.Microseconds()
	args := []any{from, w}
	for _, e := range events {
		args = append(args, e)
	}
	args = append(args, from, micros(until))
	q := `SELECT (ts - ?) / ?, outcome, COUNT(*) FROM audit_events
		WHERE event IN (?` + strings.Repeat(", ?", len(events)-1) + `) AND ts >= ? AND ts < ?
		GROUP BY 1, 2 ORDER BY 1, 2`
	rows, err := s.read.QueryContext(ctx, s.q.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("count audit events: %w", err)
	}
	out, err := scanBuckets(rows, since, width)
	if err != nil {
		return nil, fmt.Errorf("count audit events: %w", err)
	}
	return out, nil
}

// scanBuckets reads (bucket number, key, count) rows and closes them.
func scanBuckets(rows *sql.Rows, since time.Time, width time.Duration) ([]store.Bucket, error) {
	defer rows.Close()
	var out []store.Bucket
	for rows.Next() {
		var (
			n int64
			b store.Bucket
		)
		if err := rows.Scan(&n, &b.Key, &b.Count); err != nil {
			return nil, err
		}
		b.Start = since.Add(time.Duration(n) * width).UTC()
		out = append(out, b)
	}
	return out, rows.Err()
}
