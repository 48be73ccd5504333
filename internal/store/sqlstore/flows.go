package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// Flows: deployed definitions, instances, their step history, worklist
// tasks and Idempotency-Keys.
//
// CreateInstance and CommitInstance are the engine's hot path: every step
// of every flow ends in one of them. Their statements are rebound once
// (flowQueries), and an ordinary commit costs four round trips: BEGIN, the
// fenced UPDATE of the instance row, one multi-row upsert of the step
// records, COMMIT; a task, an action or a wake adds its own statement.
// With Dialect.Prepare (SQLite) the instance INSERT and UPDATE and the
// one- and two-row step upserts are prepared once: modernc compiles a
// statement on every call otherwise, which measured a quarter of
// CreateInstance's time and a third of CommitInstance's.
// Nothing is read before it is written: RowsAffected tells a lost lease or
// a closed task, and only then does a second query find out which error
// to report. State is sealed before the transaction begins, so the write
// lock is held for the statements alone.

const (
	flowCols     = `name, version, title, source, filename, deployed_by, deployed_at`
	instanceCols = `id, workflow, version, status, started_by, starter, input, vars, output, error,
		current_step, seq, state, owner, lease_until, started_at, updated_at, ended_at, depth, parent_id, branch`
	stepCols   = `instance_id, seq, step_id, type, status, attempt, started_at, ended_at, input, output, error`
	stepValues = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	stepArgs   = 11
	// taskInsertCols are the columns a new task is written with; the
	// store assigns serial.
	taskInsertCols = `instance_id, workflow, step_id, seq, type, title, assignees, actions, form,
		connect_url, status, action, acted_by, data, created_at, acted_at, due_at, escalated`
	taskCols = `serial, ` + taskInsertCols

	// stepBatch is how many step records the prebuilt upserts carry at
	// most; a commit writes one or two (the step that ended, the one that
	// started), rarely more.
	stepBatch = 8
	// deployRetries bounds how often DeployFlow retries after losing a
	// race for a version number to a concurrent deploy of the same name.
	deployRetries = 16
)

// flowQueries are the statements of this file, rebound once.
type flowQueries struct {
	deployFlow, getFlow, getLatestFlow, listFlowsFirst, listFlowsAfter string

	insertInstance, updateInstance, instanceExists, getInstance, claimInstance string
	extendLeases, expiredLeases, overdueWakes                                  string

	// upsertSteps[n] writes n step records; [0] is unused.
	upsertSteps [stepBatch + 1]string
	// createWithSteps[n] inserts an instance and its n step records in
	// one statement, for engines that run data-modifying WITH
	// (Dialect.DataModifyingCTE); [0] is unused.
	createWithSteps [stepBatch + 1]string

	insertTask, actTask, cancelTasks, getTask string

	insertIdempotency, getIdempotency, pruneIdempotency string
}

func buildFlowQueries(rebind func(string) string) flowQueries {
	q := flowQueries{
		// One statement, so atomic on its own. On PostgreSQL two
		// concurrent deploys of one name can compute the same version;
		// the primary key refuses the second, which DeployFlow retries.
		deployFlow: rebind(`INSERT INTO flow_versions (` + flowCols + `)
			VALUES (?, (SELECT COALESCE(MAX(version), 0) + 1 FROM flow_versions WHERE name = ?), ?, ?, ?, ?, ?)
			RETURNING version`),
		getFlow:       rebind(`SELECT ` + flowCols + ` FROM flow_versions WHERE name = ? AND version = ?`),
		getLatestFlow: rebind(`SELECT ` + flowCols + ` FROM flow_versions WHERE name = ? ORDER BY version DESC LIMIT 1`),
		listFlowsFirst: rebind(`SELECT ` + flowCols + ` FROM flow_versions f
			WHERE f.version = (SELECT MAX(l.version) FROM flow_versions l WHERE l.name = f.name)
			ORDER BY f.name LIMIT ?`),
		listFlowsAfter: rebind(`SELECT ` + flowCols + ` FROM flow_versions f
			WHERE f.name > ? AND f.version = (SELECT MAX(l.version) FROM flow_versions l WHERE l.name = f.name)
			ORDER BY f.name LIMIT ?`),

		insertInstance: rebind(insertInstanceSQL),
		// The fence is the WHERE clause. The fields fixed at creation are
		// not sent again: the input can be large, and every step writes
		// this row. A lease never moves back while its owner keeps the
		// instance: ExtendLeases may have moved it on since the engine
		// read it, and an older value written back would let another
		// server take over a live run. (Every right-hand side sees the
		// row as it was, so owner in the CASE is the current owner.)
		updateInstance: rebind(`UPDATE instances SET status = ?, vars = ?, output = ?, error = ?,
			current_step = ?, seq = ?, state = ?,
			lease_until = CASE WHEN owner = ? AND lease_until > ? THEN lease_until ELSE ? END,
			owner = ?, updated_at = ?, ended_at = ?, wake_at = ?
			WHERE id = ? AND owner = ?`),
		instanceExists: rebind(`SELECT 1 FROM instances WHERE id = ?`),
		getInstance:    rebind(`SELECT ` + instanceCols + ` FROM instances WHERE id = ?`),
		claimInstance: rebind(`UPDATE instances SET status = 'running', owner = ?, lease_until = ?, updated_at = ?, wake_at = 0
			WHERE id = ? AND ((status = 'waiting' AND seq = ?) OR (status = 'running' AND lease_until < ?))
			RETURNING ` + instanceCols),
		// status = 'running' is spelled as a literal so that the partial
		// indexes instances_owner and instances_lease apply.
		extendLeases: rebind(`UPDATE instances SET lease_until = ? WHERE owner = ? AND status = 'running'`),
		expiredLeases: rebind(`SELECT id FROM instances WHERE status = 'running' AND lease_until < ?
			ORDER BY lease_until LIMIT ?`),
		// status = 'waiting' as a literal for the partial index
		// instances_wake; wake_at 0 is a wait for a person.
		overdueWakes: rebind(`SELECT id, seq, wake_at FROM instances WHERE status = 'waiting' AND wake_at > 0 AND wake_at <= ?
			ORDER BY wake_at LIMIT ?`),

		insertTask: rebind(`INSERT INTO tasks (` + taskInsertCols + `)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING serial`),
		actTask: rebind(`UPDATE tasks SET status = 'done', action = ?, acted_by = ?, data = ?, acted_at = ?
			WHERE serial = ? AND instance_id = ? AND status = 'open'`),
		cancelTasks: rebind(`UPDATE tasks SET status = 'cancelled' WHERE instance_id = ? AND status = 'open'`),
		getTask:     rebind(`SELECT ` + taskCols + ` FROM tasks WHERE serial = ?`),

		insertIdempotency: rebind(`INSERT INTO idempotency_keys (principal, key, request_hash, instance_id, created_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (principal, key) DO NOTHING`),
		getIdempotency:   rebind(`SELECT request_hash, instance_id FROM idempotency_keys WHERE principal = ? AND key = ?`),
		pruneIdempotency: rebind(`DELETE FROM idempotency_keys WHERE created_at < ?`),
	}
	for n := 1; n <= stepBatch; n++ {
		q.upsertSteps[n] = rebind(upsertStepsSQL(n))
		q.createWithSteps[n] = rebind(`WITH created AS (` + insertInstanceSQL + `) ` + upsertStepsSQL(n))
	}
	return q
}

const insertInstanceSQL = `INSERT INTO instances (` + instanceCols + `, wake_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// upsertStepsSQL inserts n step records, replacing those whose (instance,
// seq) exists. ON CONFLICT … DO UPDATE is spelled the same in SQLite and
// PostgreSQL.
func upsertStepsSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO instance_steps (` + stepCols + `) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(stepValues)
	}
	b.WriteString(` ON CONFLICT (instance_id, seq) DO UPDATE SET step_id = excluded.step_id, type = excluded.type,
		status = excluded.status, attempt = excluded.attempt, started_at = excluded.started_at,
		ended_at = excluded.ended_at, input = excluded.input, output = excluded.output, error = excluded.error`)
	return b.String()
}

// instanceStateAAD binds a sealed resume state to its instance, so that a
// ciphertext copied into another instance's row does not open.
func instanceStateAAD(id string) []byte { return []byte("instance-state:" + id) }

// Scheduler puts wakes on the job queue inside the store's transaction, so
// a wake exists exactly when the commit that asked for it does
// (store.InstanceCommit.Wake). The backends install theirs
// (jobqueue.Queue) when they open the queue.
type Scheduler interface {
	ScheduleTx(ctx context.Context, tx *sql.Tx, w store.Wake) error
}

// schedulerRef boxes the installed Scheduler for atomic.Pointer.
type schedulerRef struct{ s Scheduler }

// SetScheduler installs the job queue that wakes are handed to; the last
// one installed is used. A commit with a Wake and no scheduler fails. Nil
// removes it.
func (s *Store) SetScheduler(sched Scheduler) {
	if sched == nil {
		s.scheduler.Store(nil)
		return
	}
	s.scheduler.Store(&schedulerRef{sched})
}

// nullText stores a nil document as NULL. Documents are passed as strings:
// a []byte would be bound as a BLOB, which SQLite's STRICT TEXT columns
// refuse.
func nullText(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// docOr stores a nil document of a NOT NULL column as def.
func docOr(b []byte, def string) string {
	if b == nil {
		return def
	}
	return string(b)
}

// nullMicros stores the zero time as NULL.
func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return micros(t)
}

func fromNullMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromMicros(n.Int64)
}

// --- flow definitions ---

// DeployFlow stores v as the next version of its flow. A zero DeployedAt
// becomes now.
func (s *Store) DeployFlow(ctx context.Context, v store.FlowVersion) (store.FlowVersion, error) {
	if v.Name == "" {
		return store.FlowVersion{}, errors.New("deploy flow: empty name")
	}
	v.DeployedAt = nowOr(v.DeployedAt, now())
	src := v.Source
	if src == nil {
		src = []byte{}
	}
	for attempt := 0; ; attempt++ {
		err := s.write.QueryRowContext(ctx, s.q.flows.deployFlow, v.Name, v.Name, v.Title, src, v.Filename,
			v.DeployedBy, micros(v.DeployedAt)).Scan(&v.Version)
		if err == nil {
			return v, nil
		}
		// Only PostgreSQL gets here with a unique violation: SQLite's
		// writes are serialised, so MAX(version) cannot go stale.
		if !s.dialect.IsUniqueViolation(err) || attempt == deployRetries {
			return store.FlowVersion{}, fmt.Errorf("deploy flow %q: %w", v.Name, s.conflict(err))
		}
	}
}

// GetFlow reads a version of a flow; version 0 is the latest.
func (s *Store) GetFlow(ctx context.Context, name string, version int) (store.FlowVersion, error) {
	var row *sql.Row
	if version == 0 {
		row = s.read.QueryRowContext(ctx, s.q.flows.getLatestFlow, name)
	} else {
		row = s.read.QueryRowContext(ctx, s.q.flows.getFlow, name, version)
	}
	v, err := scanFlow(row)
	if err != nil {
		return store.FlowVersion{}, fmt.Errorf("get flow %q version %d: %w", name, version, notFound(err))
	}
	return v, nil
}

// ListFlows pages through the latest version of every flow, by name.
func (s *Store) ListFlows(ctx context.Context, p store.Page) ([]store.FlowVersion, string, error) {
	out, next, err := listPage(ctx, s, p, s.q.flows.listFlowsFirst, s.q.flows.listFlowsAfter, scanFlow,
		func(v store.FlowVersion) string { return v.Name })
	if err != nil {
		return nil, "", fmt.Errorf("list flows: %w", err)
	}
	return out, next, nil
}

func scanFlow(sc scanner) (store.FlowVersion, error) {
	var (
		v        store.FlowVersion
		deployed int64
	)
	if err := sc.Scan(&v.Name, &v.Version, &v.Title, &v.Source, &v.Filename, &v.DeployedBy, &deployed); err != nil {
		return store.FlowVersion{}, err
	}
	v.DeployedAt = fromMicros(deployed)
	return v, nil
}

// --- instances ---

// commitPrep is what a commit computes before its transaction begins.
type commitPrep struct {
	state []byte
	// at is the instance's UpdatedAt, the default time of what the
	// commit writes.
	at    time.Time
	sched Scheduler
}

func (s *Store) prepareCommit(c *store.InstanceCommit) (commitPrep, error) {
	in := &c.Instance
	if in.ID == "" {
		return commitPrep{}, errors.New("empty instance id")
	}
	var p commitPrep
	if c.Wake != nil {
		ref := s.scheduler.Load()
		if ref == nil {
			return commitPrep{}, errors.New("a wake needs a scheduler, and none is installed (no job queue was opened)")
		}
		p.sched = ref.s
	}
	if len(in.State) > 0 {
		var err error
		if p.state, err = s.sealer.Seal(in.State, instanceStateAAD(in.ID)); err != nil {
			return commitPrep{}, fmt.Errorf("seal state: %w", err)
		}
	} else {
		p.state = []byte{}
	}
	p.at = nowOr(in.UpdatedAt, now())
	for _, st := range c.Steps {
		if st.InstanceID != "" && st.InstanceID != in.ID {
			return commitPrep{}, fmt.Errorf("step record %d belongs to instance %q", st.Seq, st.InstanceID)
		}
	}
	for _, t := range c.NewTasks {
		if t.InstanceID != "" && t.InstanceID != in.ID {
			return commitPrep{}, fmt.Errorf("task of step %q belongs to instance %q", t.StepID, t.InstanceID)
		}
	}
	return p, nil
}

// CreateInstance writes a new instance with its first records in one
// transaction. Zero StartedAt and UpdatedAt become now; nil Starter, Input
// and Vars are stored as {}; a Depth below 1 is 1.
func (s *Store) CreateInstance(ctx context.Context, c store.InstanceCommit) (string, error) {
	in := &c.Instance
	p, err := s.prepareCommit(&c)
	if err != nil {
		return "", fmt.Errorf("create instance %q: %w", in.ID, err)
	}
	started := nowOr(in.StartedAt, p.at)
	if s.dialect.DataModifyingCTE && plainCreate(&c) {
		if err := s.createInOneStatement(ctx, &c, p, started); err != nil {
			return "", fmt.Errorf("create instance %q: %w", in.ID, err)
		}
		return "", nil
	}
	q := &s.q.flows
	var existing string
	var serials []int64
	err = s.writeInstance(ctx, func(ctx context.Context, tx *sql.Tx) error {
		existing, serials = "", nil
		if k := c.Idempotency; k != nil {
			// DO NOTHING rather than a unique violation: on PostgreSQL a
			// failed statement would abort the transaction before the
			// existing key could be read in it.
			res, err := tx.ExecContext(ctx, q.insertIdempotency, k.Principal, k.Key, k.RequestHash, in.ID, micros(started))
			if err != nil {
				return fmt.Errorf("idempotency key: %w", err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("idempotency key: %w", err)
			} else if n == 0 {
				var hash string
				if err := tx.QueryRowContext(ctx, q.getIdempotency, k.Principal, k.Key).Scan(&hash, &existing); err != nil {
					return fmt.Errorf("idempotency key: %w", err)
				}
				if hash != k.RequestHash {
					return fmt.Errorf("idempotency key %q of %s started instance %q: %w",
						k.Key, k.Principal, existing, store.ErrIdempotencyMismatch)
				}
				return fmt.Errorf("idempotency key %q of %s started instance %q: %w",
					k.Key, k.Principal, existing, store.ErrConflict)
			}
		}
		if err := s.insertGuards(ctx, tx, &c); err != nil {
			return err
		}
		if _, err := txExec(ctx, tx, s.insertInstanceStmt, q.insertInstance,
			in.ID, in.Workflow, in.Version, in.Status, in.StartedBy,
			docOr(in.Starter, "{}"), docOr(in.Input, "{}"), docOr(in.Vars, "{}"), nullText(in.Output),
			in.Error, in.CurrentStep, in.Seq, p.state, in.Owner, microsOrZero(in.LeaseUntil),
			micros(started), micros(p.at), nullMicros(in.EndedAt), max(in.Depth, 1), in.Parent, in.Branch, wakeAt(c.Wake)); err != nil {
			return s.conflict(err)
		}
		serials, err = s.applyCommit(ctx, tx, &c, p)
		return err
	})
	if err != nil {
		if c.Idempotency != nil && existing != "" {
			return existing, fmt.Errorf("create instance: %w", err)
		}
		return "", fmt.Errorf("create instance %q: %w", in.ID, err)
	}
	for i, t := range c.NewTasks {
		t.Serial = serials[i]
	}
	return "", nil
}

// plainCreate reports whether a new instance comes with nothing but its
// step records (at most one prebuilt batch, each seq once): a flow that ran
// to its end at once, as most invokes do.
func plainCreate(c *store.InstanceCommit) bool {
	return c.Idempotency == nil && c.ScheduleClaim == nil && c.Replay == nil && c.Wake == nil &&
		c.Act == nil && c.Escalate == nil && !c.CancelTasks && len(c.NewTasks) == 0 && len(c.Mails) == 0 &&
		len(c.Steps) <= stepBatch && !hasDuplicateSeq(c.Steps)
}

// createInOneStatement writes a plain new instance and its step records as
// one statement, atomic on its own: one round trip to PostgreSQL instead of
// four (BEGIN, the instance, the steps, COMMIT).
func (s *Store) createInOneStatement(ctx context.Context, c *store.InstanceCommit, p commitPrep, started time.Time) error {
	in := &c.Instance
	args := make([]any, 0, 22+stepArgs*len(c.Steps))
	args = append(args, in.ID, in.Workflow, in.Version, in.Status, in.StartedBy,
		docOr(in.Starter, "{}"), docOr(in.Input, "{}"), docOr(in.Vars, "{}"), nullText(in.Output),
		in.Error, in.CurrentStep, in.Seq, p.state, in.Owner, microsOrZero(in.LeaseUntil),
		micros(started), micros(p.at), nullMicros(in.EndedAt), max(in.Depth, 1), in.Parent, in.Branch, wakeAt(c.Wake))
	query := s.q.flows.insertInstance
	if n := len(c.Steps); n > 0 {
		query = s.q.flows.createWithSteps[n]
		args = appendStepArgs(args, in.ID, c.Steps, p.at)
	}
	if _, err := s.write.ExecContext(ctx, query, args...); err != nil {
		return s.conflict(err)
	}
	return nil
}

// CommitInstance writes one step of progress, fenced by ExpectOwner.
func (s *Store) CommitInstance(ctx context.Context, c store.InstanceCommit) error {
	in := &c.Instance
	p, err := s.prepareCommit(&c)
	if err != nil {
		return fmt.Errorf("commit instance %q: %w", in.ID, err)
	}
	q := &s.q.flows
	lease := microsOrZero(in.LeaseUntil)
	var serials []int64
	err = s.writeInstance(ctx, func(ctx context.Context, tx *sql.Tx) error {
		serials = nil
		res, err := txExec(ctx, tx, s.updateInstanceStmt, q.updateInstance,
			in.Status, docOr(in.Vars, "{}"), nullText(in.Output), in.Error, in.CurrentStep, in.Seq, p.state,
			in.Owner, lease, lease, in.Owner, micros(p.at), nullMicros(in.EndedAt), wakeAt(c.Wake),
			in.ID, c.ExpectOwner)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			var one int
			err := tx.QueryRowContext(ctx, q.instanceExists, in.ID).Scan(&one)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return store.ErrNotFound
			case err != nil:
				return err
			}
			return fmt.Errorf("not owned by %q: %w", c.ExpectOwner, store.ErrLeaseLost)
		}
		serials, err = s.applyCommit(ctx, tx, &c, p)
		return err
	})
	if err != nil {
		return fmt.Errorf("commit instance %q: %w", in.ID, err)
	}
	for i, t := range c.NewTasks {
		t.Serial = serials[i]
	}
	return nil
}

// applyCommit writes what follows the instance row: step records, the
// action on a task, cancelled tasks, new tasks (their serials returned in
// order, to be filled in once the transaction commits) and the wake.
func (s *Store) applyCommit(ctx context.Context, tx *sql.Tx, c *store.InstanceCommit, p commitPrep) ([]int64, error) {
	q := &s.q.flows
	id := c.Instance.ID
	if err := s.upsertSteps(ctx, tx, id, c.Steps, p.at); err != nil {
		return nil, err
	}
	if e := c.Escalate; e != nil {
		if err := s.escalateTask(ctx, tx, id, e); err != nil {
			return nil, err
		}
	}
	if a := c.Act; a != nil {
		res, err := tx.ExecContext(ctx, q.actTask, a.Action, a.ActedBy, nullText(a.Data), micros(nowOr(a.At, p.at)),
			a.Serial, id)
		if err != nil {
			return nil, fmt.Errorf("act on task %d: %w", a.Serial, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, fmt.Errorf("act on task %d: %w", a.Serial, err)
		} else if n == 0 {
			return nil, fmt.Errorf("act on task %d: not an open task of the instance: %w", a.Serial, store.ErrConflict)
		}
	}
	if c.CancelTasks {
		if _, err := tx.ExecContext(ctx, q.cancelTasks, id); err != nil {
			return nil, fmt.Errorf("cancel tasks: %w", err)
		}
	}
	var serials []int64
	if len(c.NewTasks) > 0 {
		serials = make([]int64, len(c.NewTasks))
		for i, t := range c.NewTasks {
			var err error
			if serials[i], err = s.insertTask(ctx, tx, c, t, p.at); err != nil {
				return nil, err
			}
		}
	}
	if len(c.Mails) > 0 {
		if err := s.insertMails(ctx, tx, c, serials, p.at); err != nil {
			return nil, err
		}
	}
	if w := c.Wake; w != nil {
		wake := *w
		if wake.InstanceID == "" {
			wake.InstanceID = id
		}
		if err := p.sched.ScheduleTx(ctx, tx, wake); err != nil {
			return nil, fmt.Errorf("schedule wake: %w", err)
		}
	}
	return serials, nil
}

// upsertSteps writes step records in as few statements as the prebuilt
// batches allow. A seq listed twice keeps its last record: one statement
// must not upsert a row twice (PostgreSQL refuses).
func (s *Store) upsertSteps(ctx context.Context, tx *sql.Tx, id string, steps []store.StepRecord, at time.Time) error {
	if len(steps) == 0 {
		return nil
	}
	if hasDuplicateSeq(steps) {
		steps = dedupeSteps(steps)
	}
	args := make([]any, 0, stepArgs*min(len(steps), stepBatch))
	for rest := steps; len(rest) > 0; {
		n := min(len(rest), stepBatch)
		args = appendStepArgs(args[:0], id, rest[:n], at)
		var stmt *sql.Stmt
		if n < len(s.upsertStepsStmt) {
			stmt = s.upsertStepsStmt[n]
		}
		if _, err := txExec(ctx, tx, stmt, s.q.flows.upsertSteps[n], args...); err != nil {
			return fmt.Errorf("write step records: %w", err)
		}
		rest = rest[n:]
	}
	return nil
}

// appendStepArgs appends the upsert arguments of steps, in stepCols order.
func appendStepArgs(args []any, id string, steps []store.StepRecord, at time.Time) []any {
	for _, st := range steps {
		args = append(args, id, st.Seq, st.StepID, st.Type, st.Status, st.Attempt,
			micros(nowOr(st.StartedAt, at)), nullMicros(st.EndedAt), nullText(st.Input), nullText(st.Output), st.Error)
	}
	return args
}

// hasDuplicateSeq is quadratic, which for the one or two records of a
// commit beats building a map.
func hasDuplicateSeq(steps []store.StepRecord) bool {
	for i := 1; i < len(steps); i++ {
		for j := range i {
			if steps[j].Seq == steps[i].Seq {
				return true
			}
		}
	}
	return false
}

// dedupeSteps keeps the last record of each seq, in the order of their
// last appearance.
func dedupeSteps(steps []store.StepRecord) []store.StepRecord {
	last := make(map[int]int, len(steps))
	for i, st := range steps {
		last[st.Seq] = i
	}
	out := make([]store.StepRecord, 0, len(last))
	for i, st := range steps {
		if last[st.Seq] == i {
			out = append(out, st)
		}
	}
	return out
}

// insertTask writes a task and one task_assignees row per assignee. An
// empty InstanceID and Workflow are the instance's, an empty Status is
// open and a zero CreatedAt the commit's time.
func (s *Store) insertTask(ctx context.Context, tx *sql.Tx, c *store.InstanceCommit, t *store.Task, at time.Time) (int64, error) {
	workflow := t.Workflow
	if workflow == "" {
		workflow = c.Instance.Workflow
	}
	status := t.Status
	if status == "" {
		status = store.TaskOpen
	}
	l, err := encodeLists([]string{"assignees", "actions"}, t.Assignees, t.Actions)
	if err != nil {
		return 0, fmt.Errorf("create task of step %q: %w", t.StepID, err)
	}
	var serial int64
	if err := tx.QueryRowContext(ctx, s.q.flows.insertTask,
		c.Instance.ID, workflow, t.StepID, t.Seq, t.Type, t.Title, l[0], l[1], nullText(t.Form),
		t.ConnectURL, status, t.Action, t.ActedBy, nullText(t.Data), micros(nowOr(t.CreatedAt, at)),
		nullMicros(t.ActedAt), nullMicros(t.DueAt), t.Escalated).Scan(&serial); err != nil {
		return 0, fmt.Errorf("create task of step %q: %w", t.StepID, err)
	}
	if len(t.Assignees) == 0 {
		return serial, nil
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO task_assignees (assignee, serial) VALUES `)
	args := make([]any, 0, 2*len(t.Assignees))
	for i, a := range t.Assignees {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?)")
		args = append(args, a, serial)
	}
	// A name listed twice is one assignee.
	b.WriteString(` ON CONFLICT DO NOTHING`)
	if _, err := tx.ExecContext(ctx, s.q.rebind(b.String()), args...); err != nil {
		return 0, fmt.Errorf("create task of step %q: assignees: %w", t.StepID, err)
	}
	return serial, nil
}

// ClaimInstance makes owner the instance's runner, with one conditional
// UPDATE … RETURNING.
func (s *Store) ClaimInstance(ctx context.Context, id string, seq int, owner string, at, leaseUntil time.Time) (store.Instance, error) {
	row := s.write.QueryRowContext(ctx, s.q.flows.claimInstance, owner, microsOrZero(leaseUntil),
		micros(nowOr(at, now())), id, seq, micros(at))
	in, err := s.scanInstance(row)
	if err == nil {
		return in, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.Instance{}, fmt.Errorf("claim instance %q: %w", id, err)
	}
	var one int
	err = s.write.QueryRowContext(ctx, s.q.flows.instanceExists, id).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.Instance{}, fmt.Errorf("claim instance %q: %w", id, store.ErrNotFound)
	case err != nil:
		return store.Instance{}, fmt.Errorf("claim instance %q: %w", id, err)
	}
	return store.Instance{}, fmt.Errorf("claim instance %q: not waiting at step record %d, nor running on an expired lease: %w",
		id, seq, store.ErrConflict)
}

// ExtendLeases moves the leases of owner's running instances.
func (s *Store) ExtendLeases(ctx context.Context, owner string, until time.Time) (int, error) {
	res, err := s.write.ExecContext(ctx, s.q.flows.extendLeases, micros(until), owner)
	if err != nil {
		return 0, fmt.Errorf("extend leases of %q: %w", owner, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("extend leases of %q: %w", owner, err)
	}
	return int(n), nil
}

// ExpiredLeases lists running instances whose lease ended before at,
// longest expired first. A limit of 0 or less means store.DefaultLimit.
func (s *Store) ExpiredLeases(ctx context.Context, at time.Time, limit int) ([]string, error) {
	if limit <= 0 {
		limit = store.DefaultLimit
	}
	rows, err := s.read.QueryContext(ctx, s.q.flows.expiredLeases, micros(at), limit)
	if err != nil {
		return nil, fmt.Errorf("expired leases: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("expired leases: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("expired leases: %w", err)
	}
	return ids, nil
}

// OverdueWakes lists waiting instances whose wake time is at or before
// at, longest overdue first. A limit of 0 or less means store.DefaultLimit.
func (s *Store) OverdueWakes(ctx context.Context, at time.Time, limit int) ([]store.Wake, error) {
	if limit <= 0 {
		limit = store.DefaultLimit
	}
	rows, err := s.read.QueryContext(ctx, s.q.flows.overdueWakes, micros(at), limit)
	if err != nil {
		return nil, fmt.Errorf("overdue wakes: %w", err)
	}
	defer rows.Close()
	var wakes []store.Wake
	for rows.Next() {
		var w store.Wake
		var us int64
		if err := rows.Scan(&w.InstanceID, &w.Seq, &us); err != nil {
			return nil, fmt.Errorf("overdue wakes: %w", err)
		}
		w.At = fromMicros(us)
		wakes = append(wakes, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("overdue wakes: %w", err)
	}
	return wakes, nil
}

// wakeAt is the wake_at column a commit writes: when its wake is due, 0
// for none (an instance that runs, has ended, or waits for a person).
func wakeAt(w *store.Wake) int64 {
	if w == nil {
		return 0
	}
	return microsOrZero(w.At)
}

// GetInstance reads an instance and opens its state.
func (s *Store) GetInstance(ctx context.Context, id string) (store.Instance, error) {
	in, err := s.scanInstance(s.read.QueryRowContext(ctx, s.q.flows.getInstance, id))
	if err != nil {
		return store.Instance{}, fmt.Errorf("get instance %q: %w", id, notFound(err))
	}
	return in, nil
}

// ListInstances pages through matching instances, newest first: ids are
// UUIDv7, so their byte order is their start order.
func (s *Store) ListInstances(ctx context.Context, f store.InstanceFilter, p store.Page) ([]store.Instance, string, error) {
	p = p.Normalize()
	var (
		where []string
		args  = make([]any, 0, 5)
	)
	if f.StartedBy != "" {
		where = append(where, "started_by = ?")
		args = append(args, f.StartedBy)
	}
	if f.Workflow != "" {
		where = append(where, "workflow = ?")
		args = append(args, f.Workflow)
	}
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, f.Status)
	}
	if f.Parent != "" {
		where = append(where, "parent_id = ?")
		args = append(args, f.Parent)
	} else {
		// Branch and item instances belong to their parent's step; they
		// are listed only with it.
		where = append(where, "branch = ''")
	}
	if p.Cursor != "" {
		before, err := store.DecodeCursor(p.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("list instances: %w", err)
		}
		where = append(where, "id < ?")
		args = append(args, before)
	}
	var b strings.Builder
	b.WriteString("SELECT " + instanceCols + " FROM instances")
	if len(where) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(where, " AND "))
	}
	b.WriteString(" ORDER BY id DESC LIMIT ?")
	out, next, err := queryPage(ctx, s, s.q.rebind(b.String()), args, p.Limit, s.scanInstance,
		func(in store.Instance) string { return in.ID })
	if err != nil {
		return nil, "", fmt.Errorf("list instances: %w", err)
	}
	return out, next, nil
}

func (s *Store) scanInstance(sc scanner) (store.Instance, error) {
	var (
		in                      store.Instance
		state                   []byte
		lease, started, updated int64
		ended                   sql.NullInt64
	)
	if err := sc.Scan(&in.ID, &in.Workflow, &in.Version, &in.Status, &in.StartedBy, &in.Starter, &in.Input,
		&in.Vars, &in.Output, &in.Error, &in.CurrentStep, &in.Seq, &state, &in.Owner, &lease, &started,
		&updated, &ended, &in.Depth, &in.Parent, &in.Branch); err != nil {
		return store.Instance{}, err
	}
	if len(state) > 0 {
		pt, err := s.sealer.Open(state, instanceStateAAD(in.ID))
		if err != nil {
			return store.Instance{}, fmt.Errorf("instance %q state: open: %w", in.ID, err)
		}
		in.State = pt
	}
	in.LeaseUntil = fromMicrosOrZero(lease)
	in.StartedAt, in.UpdatedAt, in.EndedAt = fromMicros(started), fromMicros(updated), fromNullMicros(ended)
	return in, nil
}

// History pages through an instance's step records by seq.
func (s *Store) History(ctx context.Context, instanceID string, p store.Page) ([]store.StepRecord, string, error) {
	p = p.Normalize()
	query := `SELECT ` + stepCols + ` FROM instance_steps WHERE instance_id = ?`
	args := []any{instanceID}
	if p.Cursor != "" {
		after, err := decodeIntCursor(p.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("history of instance %q: %w", instanceID, err)
		}
		query += ` AND seq > ?`
		args = append(args, after)
	}
	query += ` ORDER BY seq LIMIT ?`
	out, next, err := queryPage(ctx, s, s.q.rebind(query), args, p.Limit, scanStep,
		func(st store.StepRecord) string { return strconv.Itoa(st.Seq) })
	if err != nil {
		return nil, "", fmt.Errorf("history of instance %q: %w", instanceID, err)
	}
	return out, next, nil
}

func scanStep(sc scanner) (store.StepRecord, error) {
	var (
		st      store.StepRecord
		started int64
		ended   sql.NullInt64
	)
	if err := sc.Scan(&st.InstanceID, &st.Seq, &st.StepID, &st.Type, &st.Status, &st.Attempt, &started, &ended,
		&st.Input, &st.Output, &st.Error); err != nil {
		return store.StepRecord{}, err
	}
	st.StartedAt, st.EndedAt = fromMicros(started), fromNullMicros(ended)
	return st, nil
}

// --- tasks ---

// CloseTask marks an open task done without touching its instance.
func (s *Store) CloseTask(ctx context.Context, a store.TaskAct) error {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`UPDATE tasks SET status = 'done', action = ?, acted_by = ?, data = ?, acted_at = ?
		WHERE serial = ? AND status = 'open'`), a.Action, a.ActedBy, nullText(a.Data), micros(nowOr(a.At, time.Now())), a.Serial)
	if err != nil {
		return fmt.Errorf("close task %d: %w", a.Serial, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("close task %d: %w", a.Serial, err)
	} else if n == 1 {
		return nil
	}
	if _, err := s.GetTask(ctx, a.Serial); err != nil {
		return fmt.Errorf("close task %d: %w", a.Serial, err)
	}
	return fmt.Errorf("close task %d: it is not open: %w", a.Serial, store.ErrConflict)
}

// GetTask reads a task.
func (s *Store) GetTask(ctx context.Context, serial int64) (store.Task, error) {
	t, err := scanTask(s.read.QueryRowContext(ctx, s.q.flows.getTask, serial))
	if err != nil {
		return store.Task{}, fmt.Errorf("get task %d: %w", serial, notFound(err))
	}
	return t, nil
}

// ListTasks pages through matching tasks by serial. Without All, a task is
// listed when one of its assignees is in f.Assignees, so an empty
// f.Assignees lists nothing.
func (s *Store) ListTasks(ctx context.Context, f store.TaskFilter, p store.Page) ([]store.Task, string, error) {
	p = p.Normalize()
	if !f.All && len(f.Assignees) == 0 {
		if p.Cursor != "" {
			if _, err := decodeIntCursor(p.Cursor); err != nil {
				return nil, "", fmt.Errorf("list tasks: %w", err)
			}
		}
		return []store.Task{}, "", nil
	}
	status := f.Status
	if status == "" {
		status = store.TaskOpen
	}
	var b strings.Builder
	args := make([]any, 0, 4+len(f.Assignees))
	b.WriteString(`SELECT ` + taskCols + ` FROM tasks WHERE status = ?`)
	args = append(args, status)
	if f.InstanceID != "" {
		b.WriteString(` AND instance_id = ?`)
		args = append(args, f.InstanceID)
	}
	if !f.All {
		b.WriteString(` AND serial IN (SELECT serial FROM task_assignees WHERE assignee IN (`)
		for i, a := range f.Assignees {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("?")
			args = append(args, a)
		}
		b.WriteString(`))`)
	}
	if p.Cursor != "" {
		after, err := decodeIntCursor(p.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("list tasks: %w", err)
		}
		b.WriteString(` AND serial > ?`)
		args = append(args, after)
	}
	b.WriteString(` ORDER BY serial LIMIT ?`)
	out, next, err := queryPage(ctx, s, s.q.rebind(b.String()), args, p.Limit, scanTask,
		func(t store.Task) string { return strconv.FormatInt(t.Serial, 10) })
	if err != nil {
		return nil, "", fmt.Errorf("list tasks: %w", err)
	}
	return out, next, nil
}

// CountTasks counts the tasks in status.
func (s *Store) CountTasks(ctx context.Context, status string) (int, error) {
	var n int
	if err := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT COUNT(*) FROM tasks WHERE status = ?`), status).Scan(&n); err != nil {
		return 0, fmt.Errorf("count tasks: %w", err)
	}
	return n, nil
}

func scanTask(sc scanner) (store.Task, error) {
	var (
		t                  store.Task
		assignees, actions string
		created            int64
		acted, due         sql.NullInt64
	)
	if err := sc.Scan(&t.Serial, &t.InstanceID, &t.Workflow, &t.StepID, &t.Seq, &t.Type, &t.Title, &assignees,
		&actions, &t.Form, &t.ConnectURL, &t.Status, &t.Action, &t.ActedBy, &t.Data, &created, &acted,
		&due, &t.Escalated); err != nil {
		return store.Task{}, err
	}
	var err error
	if t.Assignees, err = decodeList(assignees); err != nil {
		return store.Task{}, fmt.Errorf("task %d assignees: %w", t.Serial, err)
	}
	if t.Actions, err = decodeList(actions); err != nil {
		return store.Task{}, fmt.Errorf("task %d actions: %w", t.Serial, err)
	}
	t.CreatedAt, t.ActedAt, t.DueAt = fromMicros(created), fromNullMicros(acted), fromNullMicros(due)
	return t, nil
}

// PruneIdempotency deletes keys recorded before cutoff.
func (s *Store) PruneIdempotency(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.write.ExecContext(ctx, s.q.flows.pruneIdempotency, micros(cutoff))
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	return n, nil
}

// txExec runs a statement in tx, prepared when stmt is not nil.
func txExec(ctx context.Context, tx *sql.Tx, stmt *sql.Stmt, query string, args ...any) (sql.Result, error) {
	if stmt != nil {
		return tx.StmtContext(ctx, stmt).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// insertGuards writes a new instance's schedule claim and replay guard;
// ErrConflict when either is taken. ON CONFLICT DO NOTHING rather than a
// unique violation, which on PostgreSQL would abort the transaction.
func (s *Store) insertGuards(ctx context.Context, tx *sql.Tx, c *store.InstanceCommit) error {
	if sc := c.ScheduleClaim; sc != nil {
		res, err := tx.ExecContext(ctx, s.q.rebind(`INSERT INTO schedule_claims (workflow, schedule, fire_at, version, instance_id, claimed_at, catch_up)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (workflow, schedule, fire_at) DO NOTHING`),
			sc.Workflow, sc.Schedule, micros(sc.FireAt), sc.Version, c.Instance.ID, micros(now()), sc.CatchUp)
		if err != nil {
			return fmt.Errorf("schedule claim: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("schedule claim: %w", err)
		} else if n == 0 {
			return fmt.Errorf("schedule %q of %s at %s already started an instance: %w",
				sc.Schedule, sc.Workflow, sc.FireAt.UTC().Format(time.RFC3339), store.ErrConflict)
		}
	}
	if r := c.Replay; r != nil {
		// An expired guard no longer counts, whether or not it was pruned.
		if _, err := tx.ExecContext(ctx, s.q.rebind(`DELETE FROM webhook_replays WHERE key = ? AND expires_at < ?`),
			r.Key, micros(now())); err != nil {
			return fmt.Errorf("replay guard: %w", err)
		}
		res, err := tx.ExecContext(ctx, s.q.rebind(`INSERT INTO webhook_replays (key, expires_at) VALUES (?, ?)
			ON CONFLICT (key) DO NOTHING`), r.Key, micros(r.Until))
		if err != nil {
			return fmt.Errorf("replay guard: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("replay guard: %w", err)
		} else if n == 0 {
			return fmt.Errorf("replayed webhook signature: %w", store.ErrConflict)
		}
	}
	return nil
}

// escalateTask replaces an open task's assignees and marks it escalated.
func (s *Store) escalateTask(ctx context.Context, tx *sql.Tx, id string, e *store.TaskEscalation) error {
	l, err := encodeLists([]string{"assignees"}, e.Assignees)
	if err != nil {
		return fmt.Errorf("escalate task %d: %w", e.Serial, err)
	}
	res, err := tx.ExecContext(ctx, s.q.rebind(`UPDATE tasks SET assignees = ?, escalated = ?
		WHERE serial = ? AND instance_id = ? AND status = 'open'`), l[0], true, e.Serial, id)
	if err != nil {
		return fmt.Errorf("escalate task %d: %w", e.Serial, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("escalate task %d: %w", e.Serial, err)
	} else if n == 0 {
		return fmt.Errorf("escalate task %d: not an open task of the instance: %w", e.Serial, store.ErrConflict)
	}
	for _, a := range e.Assignees {
		if _, err := tx.ExecContext(ctx, s.q.rebind(`INSERT INTO task_assignees (assignee, serial) VALUES (?, ?)
			ON CONFLICT DO NOTHING`), a, e.Serial); err != nil {
			return fmt.Errorf("escalate task %d: assignees: %w", e.Serial, err)
		}
	}
	return nil
}

// LastScheduleClaim returns the latest claimed time of a schedule.
func (s *Store) LastScheduleClaim(ctx context.Context, workflow, schedule string) (time.Time, error) {
	var last sql.NullInt64
	if err := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT MAX(fire_at) FROM schedule_claims WHERE workflow = ? AND schedule = ?`),
		workflow, schedule).Scan(&last); err != nil {
		return time.Time{}, fmt.Errorf("last schedule claim of %s: %w", workflow, err)
	}
	return fromNullMicros(last), nil
}

// PruneReplays deletes webhook signatures whose guard has ended.
func (s *Store) PruneReplays(ctx context.Context, at time.Time) (int64, error) {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM webhook_replays WHERE expires_at < ?`), micros(at))
	if err != nil {
		return 0, fmt.Errorf("prune webhook replays: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune webhook replays: %w", err)
	}
	return n, nil
}

// LatestFlowVersions lists the latest version of every flow, without
// sources.
func (s *Store) LatestFlowVersions(ctx context.Context) ([]store.FlowVersion, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT f.name, f.version, f.title, f.deployed_at FROM flow_versions f
		WHERE f.version = (SELECT MAX(l.version) FROM flow_versions l WHERE l.name = f.name) ORDER BY f.name`)
	if err != nil {
		return nil, fmt.Errorf("latest flow versions: %w", err)
	}
	defer rows.Close()
	var out []store.FlowVersion
	for rows.Next() {
		var v store.FlowVersion
		var deployed int64
		if err := rows.Scan(&v.Name, &v.Version, &v.Title, &deployed); err != nil {
			return nil, fmt.Errorf("latest flow versions: %w", err)
		}
		v.DeployedAt = fromMicros(deployed)
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("latest flow versions: %w", err)
	}
	return out, nil
}
