package store

import (
	"context"
	"time"
)

// Bucket is one bar of a chart: how many rows of Key (an instance status,
// an audit outcome) fall in the interval starting at Start.
type Bucket struct {
	Start time.Time
	Key   string
	Count int64
}

// InstanceTotals are the dashboard's instance counts.
type InstanceTotals struct {
	// Running and Waiting are the instances in that status now.
	Running, Waiting int64
	// Failed are the instances that failed since the time asked for.
	Failed int64
}

// Dashboard counts what the management site's dashboard shows. Every
// count is computed by the database: no row is read to be counted.
type Dashboard interface {
	// InstanceTotals counts the instances running and waiting now, and
	// those that ended failed at or after failedSince.
	InstanceTotals(ctx context.Context, failedSince time.Time) (InstanceTotals, error)
	// InstanceBuckets counts the instances started in [since, until) by
	// status, in buckets of width starting at since. Buckets without
	// rows are left out; the rest come by Start, then Key.
	InstanceBuckets(ctx context.Context, since, until time.Time, width time.Duration) ([]Bucket, error)
	// CountOpenTasks counts the tasks still open.
	CountOpenTasks(ctx context.Context) (int64, error)
	// CountOverdueTasks counts the open tasks due before now (tasks
	// without a due time never are).
	CountOverdueTasks(ctx context.Context, now time.Time) (int64, error)
	// AuditBuckets counts the audit events named in events that happened
	// in [since, until), by outcome, in buckets as InstanceBuckets.
	AuditBuckets(ctx context.Context, events []string, since, until time.Time, width time.Duration) ([]Bucket, error)
}
