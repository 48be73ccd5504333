package store

import (
	"context"
	"errors"
	"time"
)

// ErrLeaseLost is returned when a change to an instance is made by a
// server that no longer owns it: its lease expired and another server took
// the instance over. The change is not written; the caller stops running
// the instance.
var ErrLeaseLost = errors.New("instance lease lost")

// ErrIdempotencyMismatch is returned when an Idempotency-Key is reused by
// the same caller with a different request.
var ErrIdempotencyMismatch = errors.New("idempotency key reused with a different request")

// FlowVersion is one deployed version of a flow definition.
type FlowVersion struct {
	Name    string
	Version int
	Title   string
	// Source is the definition exactly as deployed (YAML or JSON); the
	// engine parses it again when it needs the compiled form.
	Source []byte
	// Filename is the name it was deployed from, for error messages.
	Filename   string
	DeployedBy string
	DeployedAt time.Time
}

// Instance statuses, as the Workflow REST API shows them (docs/api.md).
const (
	StatusRunning   = "running"
	StatusWaiting   = "waiting"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// Instance is one run of a flow version. Input, Vars, Output and Starter
// are JSON documents the engine owns; State is the engine's private resume
// state (the outputs of finished steps, which may hold tokens), which the
// store keeps encrypted.
type Instance struct {
	ID       string
	Workflow string
	Version  int
	Status   string
	// StartedBy is the starter's principal (user:alice, client:portal, …).
	StartedBy string
	// Starter is the JSON of what expressions see as user. Starter, Input
	// and Vars are stored as {} when nil.
	Starter []byte
	Input   []byte
	Vars    []byte
	// Output is the return step's response as JSON (status, headers, body);
	// nil until the instance completes.
	Output []byte
	// Error says why the instance failed or was cancelled.
	Error string
	// CurrentStep is the step the instance is at (running or waiting on);
	// empty when it has ended.
	CurrentStep string
	// Seq is the sequence number of the last step record; step records are
	// numbered 1, 2, … in the order steps start.
	Seq int
	// State is the engine's resume state (plaintext here; sealed at rest).
	State []byte
	// Owner is the server running the instance now and LeaseUntil how long
	// its claim holds; Owner is empty when nobody runs it (waiting or ended).
	Owner      string
	LeaseUntil time.Time
	StartedAt  time.Time
	UpdatedAt  time.Time
	// EndedAt is zero while the instance has not ended.
	EndedAt time.Time
	// Depth is the instance's place in a chain of instances started by
	// instances: 1 when a person or a client started it, one more than
	// the starting instance's otherwise. Fixed at creation (CreateInstance
	// stores less than 1 as 1; CommitInstance leaves it as it is).
	Depth int
	// Parent is the instance whose flow, parallel or foreach step started
	// this one; "" when none did. Fixed at creation.
	Parent string
	// Branch is set on an instance that runs one branch of its parent's
	// parallel step ("STEP/NAME") or one item of its foreach step
	// ("STEP/INDEX"); "" otherwise. Such instances are part of the
	// parent's step: ListInstances lists them only by Parent, and the
	// dashboard does not count them. Fixed at creation.
	Branch string
}

// Ended reports whether the instance has reached a final status.
func (i *Instance) Ended() bool {
	return i.Status == StatusCompleted || i.Status == StatusFailed || i.Status == StatusCancelled
}

// Step record statuses.
const (
	StepRunning   = "running"
	StepWaiting   = "waiting"
	StepCompleted = "completed"
	StepFailed    = "failed"
	StepCancelled = "cancelled"
)

// StepRecord is one execution attempt of a step: a row of the process flow
// monitor. Input and Output are JSON with secrets already masked; the real
// outputs live in Instance.State.
type StepRecord struct {
	InstanceID string
	Seq        int
	StepID     string
	Type       string
	Status     string
	Attempt    int
	StartedAt  time.Time
	// EndedAt is zero while the step runs or waits.
	EndedAt time.Time
	Input   []byte
	Output  []byte
	Error   string
}

// Task statuses and types.
const (
	TaskOpen      = "open"
	TaskDone      = "done"
	TaskCancelled = "cancelled"

	TaskTypeTask    = "task"
	TaskTypeConnect = "connect"
)

// Task is a worklist item: a task step waiting for one of its assignees.
type Task struct {
	// Serial is assigned by the store when the task is created.
	Serial     int64
	InstanceID string
	Workflow   string
	StepID     string
	// Seq is the step record the task belongs to.
	Seq       int
	Type      string
	Title     string
	Assignees []string
	Actions   []string
	// Form is the JSON description of the form fields; nil when none.
	Form       []byte
	ConnectURL string
	Status     string
	// Action, ActedBy, Data and ActedAt are set once someone acts.
	Action    string
	ActedBy   string
	Data      []byte
	CreatedAt time.Time
	ActedAt   time.Time
	// DueAt is when the task is due; zero when it has no due time.
	DueAt time.Time
	// Escalated is set once the task's escalation added assignees.
	Escalated bool
}

// Wake asks the job queue to resume an instance at a time: a wait step's
// deadline, an HTTP retry's backoff. Seq is the step record the instance
// must still be at for the wake to apply, so a stale wake does nothing.
type Wake struct {
	InstanceID string
	Seq        int
	At         time.Time
}

// Idempotency binds a caller's Idempotency-Key to the instance it started.
type Idempotency struct {
	Principal string
	Key       string
	// RequestHash identifies the request (flow and input) so a key reused
	// with another request is refused.
	RequestHash string
}

// TaskAct closes an open task as part of a commit.
type TaskAct struct {
	Serial  int64
	Action  string
	ActedBy string
	Data    []byte
	At      time.Time
}

// TaskEscalation adds assignees to an open task of the instance and marks
// it escalated, as part of a commit.
type TaskEscalation struct {
	Serial int64
	// Assignees is the task's full list after the escalation.
	Assignees []string
}

// ScheduleClaim records that a schedule's time started an instance. The
// store keeps one claim per (Workflow, Schedule, FireAt): a second is
// refused, so servers sharing a database start one instance per time.
type ScheduleClaim struct {
	Workflow string
	// Schedule identifies the schedule within its flow (its expression
	// and zone).
	Schedule string
	FireAt   time.Time
	Version  int
	// CatchUp marks the instance started for the times missed while no
	// server ran.
	CatchUp bool
}

// ReplayGuard records a webhook signature as used until Until; the same
// Key presented again before then is refused.
type ReplayGuard struct {
	Key   string
	Until time.Time
}

// InstanceCommit is everything one step of progress writes, in one
// transaction: the instance row's new state, the step records that
// started or ended, tasks created or closed, and wakes to schedule.
type InstanceCommit struct {
	// Instance is the row's new state, written whole, except that
	// CommitInstance leaves the fields fixed at creation as they are
	// (Workflow, Version, StartedBy, Starter, Input, StartedAt, Depth), so the
	// input is not rewritten at every step, and does not move LeaseUntil
	// back while Owner stays the same (ExtendLeases may have moved it on
	// since the engine read it). Zero UpdatedAt (and StartedAt on
	// creation) means now; UpdatedAt is also the default time of the step
	// records, tasks and action of the commit.
	Instance Instance
	// ExpectOwner fences the write: the row must still be owned by this
	// server, else ErrLeaseLost and nothing is written. Empty matches only
	// a row nobody owns. Ignored by CreateInstance.
	ExpectOwner string
	// Steps are inserted, or replaced when (instance, seq) exists; of a
	// seq listed twice the last record counts. An empty InstanceID is the
	// instance's.
	Steps []StepRecord
	// NewTasks are created; their Serial fields are filled in once the
	// commit succeeds. Empty InstanceID and Workflow are the instance's,
	// an empty Status is open.
	NewTasks []*Task
	// Act closes an open task of this instance; ErrConflict when it is
	// not one (already acted on, cancelled, or another instance's).
	Act *TaskAct
	// CancelTasks closes every open task of the instance as cancelled
	// (before NewTasks are created, so those stay open). Action, ActedBy
	// and ActedAt stay empty: nobody acted.
	CancelTasks bool
	// Wake schedules a resume through the job queue, inside the commit's
	// transaction; an empty InstanceID is the instance's. The commit
	// fails, writing nothing, when the queue does or when no queue was
	// opened on the store.
	Wake *Wake
	// Idempotency records the key that started the instance
	// (CreateInstance only), as of the instance's StartedAt.
	Idempotency *Idempotency
	// Escalate adds assignees to an open task of the instance;
	// ErrConflict when it is not one.
	Escalate *TaskEscalation
	// ScheduleClaim (CreateInstance only) claims a scheduled time for
	// the instance; ErrConflict, and nothing written, when it is claimed.
	ScheduleClaim *ScheduleClaim
	// Replay (CreateInstance only) records a webhook signature as used;
	// ErrConflict, and nothing written, when it already is.
	Replay *ReplayGuard
	// Mails are queued in the outbox with the commit.
	Mails []Mail
}

// InstanceFilter narrows ListInstances. Empty fields match everything.
type InstanceFilter struct {
	StartedBy string
	Workflow  string
	Status    string
	// Parent lists the instances that instance's flow, parallel and
	// foreach steps started. Without it, branch and item instances
	// (Instance.Branch) are left out.
	Parent string
}

// TaskFilter narrows ListTasks.
type TaskFilter struct {
	// Assignees: a task is listed when any of its assignees is one of
	// these (the caller's principal and role:NAME entries); without All,
	// no Assignees lists nothing. All lists every task and ignores
	// Assignees.
	Assignees []string
	All       bool
	// Status is open, done or cancelled; empty means open.
	Status     string
	InstanceID string
}

// Flows stores flow definitions, instances, their step history and tasks.
type Flows interface {
	// DeployFlow stores source as the next version of the flow (1 for a
	// new name) and returns it with Version and DeployedAt set.
	DeployFlow(ctx context.Context, v FlowVersion) (FlowVersion, error)
	// GetFlow reads a version; version 0 means the latest. ErrNotFound
	// when the flow or the version does not exist.
	GetFlow(ctx context.Context, name string, version int) (FlowVersion, error)
	// ListFlows pages through the latest version of every flow, by name.
	ListFlows(ctx context.Context, p Page) (flows []FlowVersion, nextCursor string, err error)

	// CreateInstance writes a new instance with its first records, in one
	// transaction; ErrConflict when the id is taken. With Idempotency set
	// and the key already used by that principal, it writes nothing and
	// returns the earlier instance's id with ErrConflict when the request
	// hash matches, with ErrIdempotencyMismatch when it does not.
	CreateInstance(ctx context.Context, c InstanceCommit) (existingID string, err error)
	// CommitInstance writes one step of progress of an existing instance
	// in one transaction, fenced by ExpectOwner (ErrLeaseLost) and by Act
	// (ErrConflict); ErrNotFound when there is no such instance. On any
	// error nothing is written.
	CommitInstance(ctx context.Context, c InstanceCommit) error
	// ClaimInstance makes owner the instance's runner until leaseUntil
	// when it is waiting at step record seq (a wake or a task action), or
	// running with a lease that expired before now (a takeover; seq is
	// ignored then, pass 0). The status becomes running and UpdatedAt now.
	// ErrConflict when the instance is in neither state, ErrNotFound when
	// there is none.
	ClaimInstance(ctx context.Context, id string, seq int, owner string, now, leaseUntil time.Time) (Instance, error)
	// ExtendLeases moves the lease of every running instance owned by
	// owner to until and returns how many there were.
	ExtendLeases(ctx context.Context, owner string, until time.Time) (int, error)
	// ExpiredLeases lists running instances whose lease ended before now,
	// longest expired first, at most limit (0 or less: DefaultLimit).
	ExpiredLeases(ctx context.Context, now time.Time, limit int) ([]string, error)
	// OverdueWakes lists the wakes of waiting instances due at or before
	// now (InstanceID, Seq: the record they wait at, At), longest overdue
	// first, at most limit (0 or less: DefaultLimit). A commit with a
	// Wake records its time on the instance row; any other commit and a
	// claim clear it. Servers scan it so that a wait ends even when its
	// queued job is lost or stuck.
	OverdueWakes(ctx context.Context, now time.Time, limit int) ([]Wake, error)
	// GetInstance reads an instance; ErrNotFound when there is none.
	GetInstance(ctx context.Context, id string) (Instance, error)
	// ListInstances pages through instances, newest first.
	ListInstances(ctx context.Context, f InstanceFilter, p Page) (instances []Instance, nextCursor string, err error)
	// History pages through an instance's step records by seq; an
	// unknown instance has none.
	History(ctx context.Context, instanceID string, p Page) (steps []StepRecord, nextCursor string, err error)

	// CloseTask marks an open task done outside an instance commit: a
	// reconnect link used after its instance moved on. ErrConflict when
	// the task is not open, ErrNotFound when there is none.
	CloseTask(ctx context.Context, a TaskAct) error
	// GetTask reads a task; ErrNotFound when there is none.
	GetTask(ctx context.Context, serial int64) (Task, error)
	// ListTasks pages through tasks by serial.
	ListTasks(ctx context.Context, f TaskFilter, p Page) (tasks []Task, nextCursor string, err error)
	// CountTasks counts the tasks in status (open, done or cancelled),
	// for the open-tasks gauge on /metrics.
	CountTasks(ctx context.Context, status string) (int, error)

	// PruneIdempotency forgets keys recorded before cutoff.
	PruneIdempotency(ctx context.Context, cutoff time.Time) (int64, error)

	// LatestFlowVersions lists the latest version of every flow by name:
	// Name, Version, Title and DeployedAt, without the source (what a
	// server checks often to see deploys without reading every definition).
	LatestFlowVersions(ctx context.Context) ([]FlowVersion, error)
	// LastScheduleClaim returns the latest time claimed for a schedule
	// of a flow (ScheduleClaim); zero when none was.
	LastScheduleClaim(ctx context.Context, workflow, schedule string) (time.Time, error)
	// PruneReplays forgets webhook signatures whose guard ended before now.
	PruneReplays(ctx context.Context, now time.Time) (int64, error)
}
