package store

import (
	"context"
	"errors"
)

// The Data API (docs/api.md) reads instances, tasks, step records, audit
// events and flows through one query shape, which the store compiles to
// parameterised SQL: a filter tree over named fields, the fields wanted, an
// order, an offset and a limit, and who is asking. Values never become SQL
// text; field names are looked up in a fixed table per set (or, for the
// fields of a flow's input, passed as parameters of a JSON path).

// DataSet names what a DataQuery reads.
type DataSet string

// The data sets.
const (
	DataWorkflows DataSet = "workflows"
	DataInstances DataSet = "instances"
	DataTasks     DataSet = "tasks"
	DataSteps     DataSet = "steps"
	DataAudit     DataSet = "audit"
)

// DataType is the type of a field's values.
type DataType int

// The field types. Values are string, int64, float64, bool and time.Time
// (UTC, microseconds); a missing value is nil.
const (
	DataString DataType = iota
	DataInt
	DataFloat
	DataBool
	DataTime
)

// DataField is one field of a data set.
type DataField struct {
	Name string
	Type DataType
	// InputKey, for an instance set only, makes the field the value of
	// that key of the instance's input (a flow's input field).
	InputKey string
}

// DataFields lists the fixed fields of each set, in the order a reader
// shows them; the first is the set's key.
func DataFields(set DataSet) []DataField {
	switch set {
	case DataWorkflows:
		return []DataField{{Name: "Name"}, {Name: "Version", Type: DataInt}, {Name: "Title"},
			{Name: "DeployedBy"}, {Name: "DeployedAt", Type: DataTime}}
	case DataInstances:
		return []DataField{{Name: "Id"}, {Name: "Workflow"}, {Name: "Version", Type: DataInt}, {Name: "Status"},
			{Name: "StartedBy"}, {Name: "StartedAt", Type: DataTime}, {Name: "UpdatedAt", Type: DataTime},
			{Name: "EndedAt", Type: DataTime}, {Name: "CurrentStep"}, {Name: "Error"}}
	case DataTasks:
		return []DataField{{Name: "Serial", Type: DataInt}, {Name: "Instance"}, {Name: "Workflow"}, {Name: "Step"},
			{Name: "Type"}, {Name: "Title"}, {Name: "Status"}, {Name: "Action"}, {Name: "ActedBy"},
			{Name: "CreatedAt", Type: DataTime}, {Name: "ActedAt", Type: DataTime}}
	case DataSteps:
		return []DataField{{Name: "Instance"}, {Name: "Seq", Type: DataInt}, {Name: "Step"}, {Name: "Type"},
			{Name: "Status"}, {Name: "Attempt", Type: DataInt}, {Name: "StartedAt", Type: DataTime},
			{Name: "EndedAt", Type: DataTime}, {Name: "DurationMs", Type: DataInt}, {Name: "Error"}}
	case DataAudit:
		return []DataField{{Name: "Id", Type: DataInt}, {Name: "Time", Type: DataTime}, {Name: "Event"},
			{Name: "User"}, {Name: "Client"}, {Name: "RemoteAddr"}, {Name: "UserAgent"},
			{Name: "Outcome"}, {Name: "Detail"}}
	}
	return nil
}

// DataExpr is a filter: DataAnd, DataOr, DataNot, DataCompare or
// DataMatch.
type DataExpr interface{ dataExpr() }

// DataAnd holds when both sides do.
type DataAnd struct{ L, R DataExpr }

// DataOr holds when either side does.
type DataOr struct{ L, R DataExpr }

// DataNot holds when X does not.
type DataNot struct{ X DataExpr }

// Comparison operators of DataCompare.
const (
	OpEq = "eq"
	OpNe = "ne"
	OpGt = "gt"
	OpGe = "ge"
	OpLt = "lt"
	OpLe = "le"
)

// DataCompare compares a field with a value of the field's type (nil only
// with eq and ne: the field has no value, or has one).
type DataCompare struct {
	Field string
	Op    string
	Value any
}

// String match functions of DataMatch.
const (
	MatchContains   = "contains"
	MatchStartsWith = "startswith"
	MatchEndsWith   = "endswith"
)

// DataMatch holds when a string field contains, starts with or ends with
// Value, case-sensitively.
type DataMatch struct {
	Func  string
	Field string
	Value string
}

func (DataAnd) dataExpr()     {}
func (DataOr) dataExpr()      {}
func (DataNot) dataExpr()     {}
func (DataCompare) dataExpr() {}
func (DataMatch) dataExpr()   {}

// DataOrder is one key of a DataQuery's order.
type DataOrder struct {
	Field string
	Desc  bool
}

// DataScope says which rows the caller may see, as the REST API decides:
// everything (All); else instances (and their step records) started by
// StartedBy, tasks naming one of Assignees, flows named in Workflows.
// The zero DataScope sees nothing.
type DataScope struct {
	All       bool
	StartedBy string
	Assignees []string
	Workflows []string
}

// DataQuery is one read of a data set.
type DataQuery struct {
	Set DataSet
	// Workflow narrows an instance set to one flow's instances.
	Workflow string
	// Inputs are extra fields of an instance set read from the input.
	Inputs []DataField
	Filter DataExpr
	// Select lists the fields returned; empty means all.
	Select []string
	// OrderBy comes first; the set's key always ends the order, so that
	// pages are stable.
	OrderBy []DataOrder
	Skip    int
	// After, when set, holds the key of the last row of the previous page
	// (DataKey's fields, in order): the page starts after it. Paging by
	// key costs the same at the end of a large set as at its start, where
	// Skip costs the rows skipped. Only without OrderBy.
	After []any
	// Limit bounds the rows returned; 0 or less means DefaultLimit.
	Limit int
	Scope DataScope
}

// DataKey names the fields that identify a row of a set, in the order
// rows are listed when a query has no OrderBy.
func DataKey(set DataSet) []string {
	switch set {
	case DataWorkflows:
		return []string{"Name"}
	case DataInstances:
		return []string{"Id"}
	case DataTasks:
		return []string{"Serial"}
	case DataSteps:
		return []string{"Instance", "Seq"}
	case DataAudit:
		return []string{"Id"}
	}
	return nil
}

// ErrDataField is returned for a query naming a field its set does not
// have, or comparing a field with a value of another type.
var ErrDataField = errors.New("unknown data field or wrong value type")

// DataRow is one row: field name to value.
type DataRow map[string]any

// DataReader runs Data API queries in the database.
type DataReader interface {
	// QueryData returns the rows of q's page.
	QueryData(ctx context.Context, q DataQuery) ([]DataRow, error)
	// CountData counts the rows q's filter and scope match (Skip, After,
	// Limit, Select and OrderBy are ignored: it counts the whole answer,
	// whichever page asks).
	CountData(ctx context.Context, q DataQuery) (int64, error)
	// ExplainData returns the database's plan for q, for tests and
	// operators checking that a query uses an index.
	ExplainData(ctx context.Context, q DataQuery) (string, error)
}
