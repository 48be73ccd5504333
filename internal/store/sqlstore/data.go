package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// The Data API's queries (store.DataQuery) are built here, per request,
// from fixed pieces: every table and column name comes from dataSets
// below, every value the caller gave is a ? parameter. A flow input field
// is read with a JSON path that is itself a parameter.

// dataSet is how a store.DataSet maps onto SQL.
type dataSet struct {
	from string
	// cols maps a field name to its SQL expression.
	cols map[string]string
	// key orders rows uniquely; it ends every ORDER BY.
	key []string
	// base is a condition every row of the set meets ("" when none).
	base string
}

// dataSets is built per call: a table of constants, not state.
func dataSets() map[store.DataSet]dataSet {
	return map[store.DataSet]dataSet{
		store.DataWorkflows: {
			from: `flow_versions f`,
			cols: map[string]string{"Name": "f.name", "Version": "f.version", "Title": "f.title",
				"DeployedBy": "f.deployed_by", "DeployedAt": "f.deployed_at"},
			key:  []string{"f.name"},
			base: `f.version = (SELECT MAX(g.version) FROM flow_versions g WHERE g.name = f.name)`,
		},
		store.DataInstances: {
			from: `instances i`,
			cols: map[string]string{"Id": "i.id", "Workflow": "i.workflow", "Version": "i.version", "Status": "i.status",
				"StartedBy": "i.started_by", "StartedAt": "i.started_at", "UpdatedAt": "i.updated_at",
				"EndedAt": "i.ended_at", "CurrentStep": "i.current_step", "Error": "i.error"},
			key: []string{"i.id"},
			// A parallel branch's or a foreach item's instance is part of
			// its parent's step, counted with it.
			base: `i.branch = ''`,
		},
		store.DataTasks: {
			from: `tasks t`,
			cols: map[string]string{"Serial": "t.serial", "Instance": "t.instance_id", "Workflow": "t.workflow",
				"Step": "t.step_id", "Type": "t.type", "Title": "t.title", "Status": "t.status", "Action": "t.action",
				"ActedBy": "t.acted_by", "CreatedAt": "t.created_at", "ActedAt": "t.acted_at"},
			key: []string{"t.serial"},
		},
		store.DataSteps: {
			from: `instance_steps s`,
			cols: map[string]string{"Instance": "s.instance_id", "Seq": "s.seq", "Step": "s.step_id", "Type": "s.type",
				"Status": "s.status", "Attempt": "s.attempt", "StartedAt": "s.started_at", "EndedAt": "s.ended_at",
				"DurationMs": "((s.ended_at - s.started_at) / 1000)", "Error": "s.error"},
			key: []string{"s.instance_id", "s.seq"},
		},
		store.DataAudit: {
			from: `audit_events e`,
			cols: map[string]string{"Id": "e.id", "Time": "e.ts", "Event": "e.event", "User": "e.username",
				"Client": "e.client_id", "RemoteAddr": "e.remote_addr", "UserAgent": "e.user_agent",
				"Outcome": "e.outcome", "Detail": "e.detail"},
			key: []string{"e.id"},
		},
	}
}

// dataBuilder writes one query: SQL text with ? placeholders and the
// arguments in the order of the placeholders.
type dataBuilder struct {
	pg     bool
	set    dataSet
	fields map[string]store.DataField
	inputs map[string]store.DataField
	sb     strings.Builder
	args   []any
}

func (s *Store) newDataBuilder(q store.DataQuery) (*dataBuilder, error) {
	set, ok := dataSets()[q.Set]
	if !ok {
		return nil, fmt.Errorf("data set %q: %w", q.Set, store.ErrDataField)
	}
	b := &dataBuilder{pg: s.dialect.Name == "postgres", set: set,
		fields: map[string]store.DataField{}, inputs: map[string]store.DataField{}}
	for _, f := range store.DataFields(q.Set) {
		b.fields[f.Name] = f
	}
	if len(q.Inputs) > 0 && q.Set != store.DataInstances {
		return nil, fmt.Errorf("input fields on data set %q: %w", q.Set, store.ErrDataField)
	}
	for _, f := range q.Inputs {
		if _, dup := b.fields[f.Name]; dup || f.InputKey == "" {
			return nil, fmt.Errorf("input field %q: %w", f.Name, store.ErrDataField)
		}
		b.fields[f.Name] = f
		b.inputs[f.Name] = f
	}
	return b, nil
}

func (b *dataBuilder) w(s ...string) {
	for _, x := range s {
		b.sb.WriteString(x)
	}
}

// col writes the SQL expression of a field.
func (b *dataBuilder) col(name string) (store.DataField, error) {
	f, ok := b.fields[name]
	if !ok {
		return f, fmt.Errorf("field %q: %w", name, store.ErrDataField)
	}
	if f.InputKey == "" {
		b.w(b.set.cols[name])
		return f, nil
	}
	// The key travels as a parameter (a JSON path on SQLite, a key on
	// PostgreSQL), never as SQL text.
	if !b.pg {
		b.w("json_extract(i.input, ?)")
		b.args = append(b.args, `$."`+strings.ReplaceAll(f.InputKey, `"`, `\"`)+`"`)
		return f, nil
	}
	key := f.InputKey
	switch f.Type {
	case store.DataInt, store.DataFloat, store.DataBool:
		typ, cast := "number", "bigint"
		if f.Type == store.DataFloat {
			cast = "double precision"
		} else if f.Type == store.DataBool {
			typ, cast = "boolean", "boolean"
		}
		b.w("(CASE WHEN jsonb_typeof(i.input::jsonb -> CAST(? AS text)) = '", typ,
			"' THEN (i.input::jsonb ->> CAST(? AS text))::", cast, " END)")
		b.args = append(b.args, key, key)
	default:
		b.w("(i.input::jsonb ->> CAST(? AS text))")
		b.args = append(b.args, key)
	}
	return f, nil
}

// value turns a filter value into the argument for a field of type t.
func (b *dataBuilder) value(f store.DataField, v any) (any, error) {
	bad := fmt.Errorf("field %s: value %v (%T) does not fit the field's type: %w", f.Name, v, v, store.ErrDataField)
	switch f.Type {
	case store.DataString:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case store.DataInt:
		switch n := v.(type) {
		case int64:
			return n, nil
		case float64:
			return n, nil
		}
	case store.DataFloat:
		switch n := v.(type) {
		case int64:
			return float64(n), nil
		case float64:
			return n, nil
		}
	case store.DataBool:
		if x, ok := v.(bool); ok {
			if !b.pg {
				// json_extract gives SQLite's 1 and 0.
				if x {
					return int64(1), nil
				}
				return int64(0), nil
			}
			return x, nil
		}
	case store.DataTime:
		if t, ok := v.(time.Time); ok {
			return micros(t), nil
		}
	}
	return nil, bad
}

func sqlOp(op string) (string, bool) {
	s, ok := map[string]string{store.OpEq: "=", store.OpNe: "<>", store.OpGt: ">", store.OpGe: ">=", store.OpLt: "<", store.OpLe: "<="}[op]
	return s, ok
}

func (b *dataBuilder) expr(e store.DataExpr) error {
	switch x := e.(type) {
	case store.DataAnd:
		return b.binary(x.L, " AND ", x.R)
	case store.DataOr:
		return b.binary(x.L, " OR ", x.R)
	case store.DataNot:
		// OData's not(null gt 1) is true; SQL's NOT NULL is unknown.
		b.w("NOT COALESCE((")
		if err := b.expr(x.X); err != nil {
			return err
		}
		b.w("), FALSE)")
		return nil
	case store.DataCompare:
		op, ok := sqlOp(x.Op)
		if !ok {
			return fmt.Errorf("operator %q: %w", x.Op, store.ErrDataField)
		}
		if x.Value == nil {
			if x.Op != store.OpEq && x.Op != store.OpNe {
				return fmt.Errorf("field %s: only eq and ne compare with null: %w", x.Field, store.ErrDataField)
			}
			if _, err := b.col(x.Field); err != nil {
				return err
			}
			if x.Op == store.OpEq {
				b.w(" IS NULL")
			} else {
				b.w(" IS NOT NULL")
			}
			return nil
		}
		f, err := b.col(x.Field)
		if err != nil {
			return err
		}
		v, err := b.value(f, x.Value)
		if err != nil {
			return err
		}
		if x.Op == store.OpNe {
			// A missing value differs from every value.
			if b.pg {
				op = "IS DISTINCT FROM"
			} else {
				op = "IS NOT"
			}
		}
		b.w(" ", op, " ?")
		b.args = append(b.args, v)
		return nil
	case store.DataMatch:
		f, ok := b.fields[x.Field]
		if !ok || f.Type != store.DataString {
			return fmt.Errorf("%s needs a text field, not %q: %w", x.Func, x.Field, store.ErrDataField)
		}
		if x.Value == "" {
			_, err := b.col(x.Field)
			b.w(" IS NOT NULL")
			return err
		}
		return b.match(x)
	case nil:
		b.w("1 = 1")
		return nil
	}
	return fmt.Errorf("filter %T: %w", e, store.ErrDataField)
}

// match writes a case-sensitive string test. (SQLite's LIKE ignores
// ASCII case, so neither backend uses LIKE.)
func (b *dataBuilder) match(x store.DataMatch) error {
	param := "?"
	if b.pg {
		param = "CAST(? AS text)"
	}
	switch x.Func {
	case store.MatchContains:
		fn := "instr("
		if b.pg {
			fn = "strpos("
		}
		b.w(fn)
		if _, err := b.col(x.Field); err != nil {
			return err
		}
		b.w(", ", param, ") > 0")
		b.args = append(b.args, x.Value)
	case store.MatchStartsWith, store.MatchEndsWith:
		// substr(c, 1, n) and substr(c, -n) on SQLite, left/right on
		// PostgreSQL; both count characters.
		switch {
		case b.pg && x.Func == store.MatchStartsWith:
			b.w("left(")
		case b.pg:
			b.w("right(")
		default:
			b.w("substr(")
		}
		if _, err := b.col(x.Field); err != nil {
			return err
		}
		switch {
		case b.pg:
			b.w(", length(", param, ")) = ", param)
		case x.Func == store.MatchStartsWith:
			b.w(", 1, length(?)) = ?")
		default:
			b.w(", -length(?)) = ?")
		}
		b.args = append(b.args, x.Value, x.Value)
	default:
		return fmt.Errorf("function %q: %w", x.Func, store.ErrDataField)
	}
	return nil
}

func (b *dataBuilder) binary(l store.DataExpr, op string, r store.DataExpr) error {
	b.w("(")
	if err := b.expr(l); err != nil {
		return err
	}
	b.w(op)
	if err := b.expr(r); err != nil {
		return err
	}
	b.w(")")
	return nil
}

// where writes the WHERE clause: the set's own condition, the scope and
// the filter.
func (b *dataBuilder) where(q store.DataQuery) error {
	b.w(" WHERE ")
	if b.set.base != "" {
		b.w(b.set.base, " AND ")
	}
	if q.Workflow != "" {
		b.w("i.workflow = ? AND ")
		b.args = append(b.args, q.Workflow)
	}
	if err := b.scope(q); err != nil {
		return err
	}
	if len(q.After) > 0 {
		if err := b.after(q); err != nil {
			return err
		}
	}
	if q.Filter != nil {
		b.w(" AND (")
		if err := b.expr(q.Filter); err != nil {
			return err
		}
		b.w(")")
	}
	return nil
}

// after writes the keyset condition: rows whose key comes after q.After.
func (b *dataBuilder) after(q store.DataQuery) error {
	key := store.DataKey(q.Set)
	if len(q.OrderBy) > 0 || len(q.After) != len(key) {
		return fmt.Errorf("a page after a key needs the %d key values and no other order: %w", len(key), store.ErrDataField)
	}
	cols := make([]string, len(key))
	for i, k := range key {
		v, err := b.value(b.fields[k], q.After[i])
		if err != nil {
			return err
		}
		cols[i] = b.set.cols[k]
		b.args = append(b.args, v)
	}
	if len(cols) == 1 {
		b.w(" AND ", cols[0], " > ?")
		return nil
	}
	b.w(" AND (", strings.Join(cols, ", "), ") > (", strings.Repeat("?, ", len(cols)-1), "?)")
	return nil
}

func (b *dataBuilder) in(col string, vals []string) {
	if len(vals) == 0 {
		b.w("1 = 0")
		return
	}
	b.w(col, " IN (", strings.Repeat("?, ", len(vals)-1), "?)")
	for _, v := range vals {
		b.args = append(b.args, v)
	}
}

// scope writes who may see which rows (docs/api.md): the same rule as the
// REST API's lists.
func (b *dataBuilder) scope(q store.DataQuery) error {
	sc := q.Scope
	if sc.All {
		b.w("1 = 1")
		return nil
	}
	switch q.Set {
	case store.DataWorkflows:
		b.in("f.name", sc.Workflows)
	case store.DataInstances:
		if sc.StartedBy == "" {
			b.w("1 = 0")
			return nil
		}
		b.w("i.started_by = ?")
		b.args = append(b.args, sc.StartedBy)
	case store.DataSteps:
		if sc.StartedBy == "" {
			b.w("1 = 0")
			return nil
		}
		b.w("s.instance_id IN (SELECT si.id FROM instances si WHERE si.started_by = ?)")
		b.args = append(b.args, sc.StartedBy)
	case store.DataTasks:
		if len(sc.Assignees) == 0 {
			b.w("1 = 0")
			return nil
		}
		b.w("t.serial IN (SELECT ta.serial FROM task_assignees ta WHERE ")
		b.in("ta.assignee", sc.Assignees)
		b.w(")")
	default:
		// The audit log is for administrators only.
		b.w("1 = 0")
	}
	return nil
}

// selected lists the fields a query returns, in the set's order then the
// inputs' order, or those named in q.Select.
func selected(q store.DataQuery, b *dataBuilder) ([]store.DataField, error) {
	if len(q.Select) == 0 {
		return append(store.DataFields(q.Set), q.Inputs...), nil
	}
	out := make([]store.DataField, 0, len(q.Select))
	for _, n := range q.Select {
		f, ok := b.fields[n]
		if !ok {
			return nil, fmt.Errorf("field %q: %w", n, store.ErrDataField)
		}
		out = append(out, f)
	}
	return out, nil
}

// build writes the page query and returns the fields of its columns.
func (s *Store) buildDataQuery(q store.DataQuery) (*dataBuilder, []store.DataField, error) {
	b, err := s.newDataBuilder(q)
	if err != nil {
		return nil, nil, err
	}
	fields, err := selected(q, b)
	if err != nil {
		return nil, nil, err
	}
	b.w("SELECT ")
	for i, f := range fields {
		if i > 0 {
			b.w(", ")
		}
		if _, err := b.col(f.Name); err != nil {
			return nil, nil, err
		}
	}
	b.w(" FROM ", b.set.from)
	if err := b.where(q); err != nil {
		return nil, nil, err
	}
	b.w(" ORDER BY ")
	for _, o := range q.OrderBy {
		if _, err := b.col(o.Field); err != nil {
			return nil, nil, err
		}
		// The same place for missing values on both backends.
		if o.Desc {
			b.w(" DESC NULLS LAST, ")
		} else {
			b.w(" ASC NULLS FIRST, ")
		}
	}
	b.w(strings.Join(b.set.key, ", "))
	limit := q.Limit
	if limit <= 0 {
		limit = store.DefaultLimit
	}
	b.w(" LIMIT ? OFFSET ?")
	b.args = append(b.args, limit, max(q.Skip, 0))
	return b, fields, nil
}

func (b *dataBuilder) query(s *Store) string {
	if s.dialect.Rebind != nil {
		return s.dialect.Rebind(b.sb.String())
	}
	return b.sb.String()
}

// QueryData implements store.DataReader.
func (s *Store) QueryData(ctx context.Context, q store.DataQuery) ([]store.DataRow, error) {
	b, fields, err := s.buildDataQuery(q)
	if err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, b.query(s), b.args...)
	if err != nil {
		return nil, fmt.Errorf("query data %s: %w", q.Set, err)
	}
	defer rows.Close()
	var out []store.DataRow
	dest := make([]any, len(fields))
	for rows.Next() {
		for i, f := range fields {
			switch f.Type {
			case store.DataInt, store.DataTime:
				dest[i] = new(sql.NullInt64)
			case store.DataFloat:
				dest[i] = new(sql.NullFloat64)
			case store.DataBool:
				dest[i] = new(sql.NullBool)
			default:
				dest[i] = new(sql.NullString)
			}
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("query data %s: %w", q.Set, err)
		}
		row := make(store.DataRow, len(fields))
		for i, f := range fields {
			row[f.Name] = dataValue(f, dest[i])
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query data %s: %w", q.Set, err)
	}
	return out, nil
}

func dataValue(f store.DataField, d any) any {
	switch v := d.(type) {
	case *sql.NullInt64:
		if !v.Valid {
			return nil
		}
		if f.Type == store.DataTime {
			return fromMicros(v.Int64)
		}
		return v.Int64
	case *sql.NullFloat64:
		if !v.Valid {
			return nil
		}
		return v.Float64
	case *sql.NullBool:
		if !v.Valid {
			return nil
		}
		return v.Bool
	case *sql.NullString:
		if !v.Valid {
			return nil
		}
		return v.String
	}
	return nil
}

// CountData implements store.DataReader.
func (s *Store) CountData(ctx context.Context, q store.DataQuery) (int64, error) {
	q.After = nil
	b, err := s.newDataBuilder(q)
	if err != nil {
		return 0, err
	}
	b.w("SELECT COUNT(*) FROM ", b.set.from)
	if err := b.where(q); err != nil {
		return 0, err
	}
	var n int64
	if err := s.read.QueryRowContext(ctx, b.query(s), b.args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count data %s: %w", q.Set, err)
	}
	return n, nil
}

// ExplainData implements store.DataReader.
func (s *Store) ExplainData(ctx context.Context, q store.DataQuery) (string, error) {
	b, _, err := s.buildDataQuery(q)
	if err != nil {
		return "", err
	}
	prefix := "EXPLAIN QUERY PLAN "
	if b.pg {
		prefix = "EXPLAIN "
	}
	rows, err := s.read.QueryContext(ctx, prefix+b.query(s), b.args...)
	if err != nil {
		return "", fmt.Errorf("explain data %s: %w", q.Set, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	var lines []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return "", err
		}
		// SQLite: id, parent, notused, detail; PostgreSQL: one line.
		lines = append(lines, fmt.Sprint(vals[len(vals)-1]))
	}
	return strings.Join(lines, "\n"), rows.Err()
}
