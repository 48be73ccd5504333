package odata

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
)

// namespace is the CSDL schema namespace of every type.
const namespace = "Flowgate"

// entitySet is one entity set of the service as one caller sees it.
type entitySet struct {
	name     string
	typeName string
	set      store.DataSet
	// workflow narrows a flow's set to its instances.
	workflow string
	fields   []store.DataField
	inputs   []store.DataField
	key      []string
	// adminOnly sets are listed to administrators only.
	adminOnly bool
}

func (e *entitySet) all() []store.DataField { return append(slices.Clone(e.fields), e.inputs...) }

func (e *entitySet) field(name string) (store.DataField, bool) {
	for _, f := range e.all() {
		if f.Name == name {
			return f, true
		}
	}
	return store.DataField{}, false
}

// props is name to type, for the filter parser.
func (e *entitySet) props() map[string]store.DataType {
	m := map[string]store.DataType{}
	for _, f := range e.all() {
		m[f.Name] = f.Type
	}
	return m
}

// nullable says which properties may be missing: the ends of what has not
// ended yet, and every input field (an optional field may be absent).
func nullable(f store.DataField) bool {
	if f.InputKey != "" {
		return true
	}
	switch f.Name {
	case "EndedAt", "ActedAt", "DurationMs":
		return true
	}
	return false
}

func edmType(t store.DataType) string {
	switch t {
	case store.DataInt:
		return "Edm.Int64"
	case store.DataFloat:
		return "Edm.Double"
	case store.DataBool:
		return "Edm.Boolean"
	case store.DataTime:
		return "Edm.DateTimeOffset"
	}
	return "Edm.String"
}

// fixedSets are the entity sets every caller has (AuditEvents only
// administrators).
func fixedSets() []*entitySet {
	return []*entitySet{
		{name: "Workflows", typeName: "Workflow", set: store.DataWorkflows, key: []string{"Name"}},
		{name: "Instances", typeName: "Instance", set: store.DataInstances, key: []string{"Id"}},
		{name: "Tasks", typeName: "Task", set: store.DataTasks, key: []string{"Serial"}},
		{name: "Steps", typeName: "Step", set: store.DataSteps, key: []string{"Instance", "Seq"}},
		{name: "AuditEvents", typeName: "AuditEvent", set: store.DataAudit, key: []string{"Id"}, adminOnly: true},
	}
}

// isIdentifier reports whether s is an OData SimpleIdentifier (kept to
// ASCII).
func isIdentifier(s string) bool {
	if s == "" || len(s) > 128 || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// SetName is the entity set of a flow's instances: its name with every
// character an OData name cannot hold ("-", ".") turned into "_", and a
// leading "_" before a digit.
func SetName(flowName string) string {
	b := []byte(flowName)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	s := string(b)
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		s = "_" + s
	}
	return s
}

// inputType maps a flow input field's type to a property type; objects
// and arrays are their JSON text.
func inputType(t string) store.DataType {
	switch t {
	case "number":
		return store.DataFloat
	case "integer":
		return store.DataInt
	case "boolean":
		return store.DataBool
	}
	return store.DataString
}

// flowSet is the entity set of def's instances: the instance properties
// and one per input field. Input fields whose names are no OData name, or
// that an instance property already has, are left out.
func flowSet(def *flow.Definition) *entitySet {
	name := SetName(def.Name)
	e := &entitySet{name: name, typeName: "Flow_" + name, set: store.DataInstances, workflow: def.Name,
		fields: store.DataFields(store.DataInstances), key: []string{"Id"}}
	taken := map[string]bool{}
	for _, f := range e.fields {
		taken[f.Name] = true
	}
	for _, k := range def.InputOrder {
		if !isIdentifier(k) || taken[k] {
			continue
		}
		taken[k] = true
		e.inputs = append(e.inputs, store.DataField{Name: k, Type: inputType(def.Input[k].Type), InputKey: k})
	}
	return e
}

// maxFlowPages bounds how many pages of flows a request reads to build
// its model (100 flows a page).
const maxFlowPages = 50

// model is the service as one caller sees it: its entity sets, in order,
// and the names of the flows it may start.
type model struct {
	sets  []*entitySet
	flows []string
}

func (m *model) lookup(name string) *entitySet {
	for _, s := range m.sets {
		if s.name == name {
			return s
		}
	}
	return nil
}

// buildModel lists the caller's entity sets: the fixed ones, then one per
// flow it may start (every flow for an administrator). A flow whose set
// name is already taken (a fixed set, or another flow spelled alike) is
// left out.
func buildModel(ctx context.Context, eng *engine.Engine, c engine.Caller) (*model, error) {
	m := &model{}
	taken := map[string]bool{}
	for _, s := range fixedSets() {
		taken[s.name] = true
		if s.adminOnly && !c.Admin {
			continue
		}
		s.fields = store.DataFields(s.set)
		m.sets = append(m.sets, s)
	}
	if eng == nil {
		return m, nil
	}
	cursor := ""
	for range maxFlowPages {
		defs, next, err := eng.ListStartable(ctx, c, store.Page{Limit: 100, Cursor: cursor})
		if err != nil {
			return nil, fmt.Errorf("list flows: %w", err)
		}
		for _, d := range defs {
			m.flows = append(m.flows, d.Name)
			s := flowSet(d)
			if taken[s.name] || strings.HasPrefix(s.name, "$") {
				continue
			}
			taken[s.name] = true
			m.sets = append(m.sets, s)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return m, nil
}
