package flow

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// fieldTypes lists the types an input or form field may have.
// (A function, not a variable, so no caller can change the list.)
func fieldTypes() []string {
	return []string{"string", "number", "integer", "boolean", "object", "array"}
}

// InputErrors lists every InputError in err, however it was joined and
// wrapped: the problems a caller shows next to each field.
func InputErrors(err error) []*InputError {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*InputError
		for _, e := range j.Unwrap() {
			out = append(out, InputErrors(e)...)
		}
		return out
	}
	if ie, ok := err.(*InputError); ok {
		return []*InputError{ie}
	}
	if u := errors.Unwrap(err); u != nil {
		return InputErrors(u)
	}
	return nil
}

// InputError is one problem with start input or task data. ValidateInput
// and ValidateForm join them with errors.Join; the API answers 400 with
// them.
type InputError struct {
	// Field is the path of the value: input.amount, data.comment.
	Field string
	Err   error
}

// Error formats the problem as field: message.
func (e *InputError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the underlying problem.
func (e *InputError) Unwrap() error { return e.Err }

// ErrRequired is the reason of an InputError for a missing required field.
var ErrRequired = errors.New("required")

// ErrUnknownField is the reason of an InputError for a field the flow does
// not declare.
var ErrUnknownField = errors.New("unknown field")

// ValidateInput checks start input against the flow's input fields and
// returns the input to start with: numbers as float64, integers as int,
// defaults filled in. A null value counts as absent. Unknown fields are
// refused, so that a misspelt field is reported rather than silently
// ignored while its default applies. Every problem is reported, fields in
// declaration order, then unknown fields by name.
func (d *Definition) ValidateInput(input map[string]any) (map[string]any, error) {
	return validateFields("input", d.Input, d.InputOrder, input)
}

// ValidateForm checks the data of a task action against the task's form,
// by the same rules as ValidateInput; problems name data.FIELD.
func ValidateForm(fields map[string]Field, data map[string]any) (map[string]any, error) {
	order := make([]string, 0, len(fields))
	for name := range fields {
		order = append(order, name)
	}
	slices.Sort(order)
	return validateFields("data", fields, order, data)
}

// ValidateForm checks the data of an action on t, fields in declaration
// order.
func (t *Task) ValidateForm(data map[string]any) (map[string]any, error) {
	return validateFields("data", t.Form, t.FormOrder, data)
}

// ActionData is what an action on t keeps of the data sent with it. With
// a form, the data is checked against it and also goes into the
// instance's vars (toVars); without one, any object is the action's data
// as sent, and the vars are left alone: nothing declared what it may hold.
func (t *Task) ActionData(data map[string]any) (clean map[string]any, toVars bool, err error) {
	if len(t.Form) == 0 {
		if data == nil {
			data = map[string]any{}
		}
		return data, false, nil
	}
	clean, err = t.ValidateForm(data)
	return clean, true, err
}

func validateFields(prefix string, fields map[string]Field, order []string, data map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(fields))
	var errs []error
	for _, name := range order {
		f := fields[name]
		v, ok := data[name]
		if !ok || v == nil {
			switch {
			case f.Default != nil:
				out[name] = deepCopy(f.Default)
			case f.Required:
				errs = append(errs, &InputError{Field: prefix + "." + name, Err: ErrRequired})
			}
			continue
		}
		nv, err := checkValue(f, v)
		if err != nil {
			errs = append(errs, &InputError{Field: prefix + "." + name, Err: err})
			continue
		}
		out[name] = nv
	}
	var unknown []string
	for name := range data {
		if _, ok := fields[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		err := ErrUnknownField
		if len(order) > 0 {
			err = fmt.Errorf("%w (fields: %s)", ErrUnknownField, strings.Join(order, ", "))
		}
		errs = append(errs, &InputError{Field: prefix + "." + name, Err: err})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// checkValue checks v against f's type and enum and returns it normalized.
func checkValue(f Field, v any) (any, error) {
	nv, err := normalize(f.Type, v)
	if err != nil {
		return nil, err
	}
	if len(f.Enum) > 0 && !slices.Contains(f.Enum, nv) {
		vals := make([]string, len(f.Enum))
		for i, e := range f.Enum {
			b, _ := json.Marshal(e)
			vals[i] = string(b)
		}
		return nil, fmt.Errorf("want one of %s", strings.Join(vals, ", "))
	}
	return nv, nil
}

// normalize checks v is of the JSON type typ and converts it to the one Go
// representation expressions see: float64 for number, int for integer,
// map[string]any and []any for object and array.
func normalize(typ string, v any) (any, error) {
	want := func() error { return fmt.Errorf("want %s, got %s", typ, typeName(v)) }
	switch typ {
	case "string":
		if s, ok := v.(string); ok {
			return s, nil
		}
	case "boolean":
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case "number":
		if f, ok := toFloat(v); ok {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, errors.New("want a finite number")
			}
			return f, nil
		}
	case "integer":
		if f, ok := toFloat(v); ok {
			if f != math.Trunc(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("want integer, got %s", strconv.FormatFloat(f, 'g', -1, 64))
			}
			// Beyond 2^53 a float64 no longer holds every integer, so the
			// value may not be what the caller sent.
			if math.Abs(f) > 1<<53 {
				return nil, errors.New("want an integer between -2^53 and 2^53")
			}
			return int(f), nil
		}
	case "object":
		if m, ok := v.(map[string]any); ok {
			return m, nil
		}
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Map && rv.Type().Key().Kind() == reflect.String {
			return v, nil
		}
	case "array":
		if a, ok := v.([]any); ok {
			return a, nil
		}
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice {
			return v, nil
		}
	default:
		return nil, fmt.Errorf("unknown type %q", typ)
	}
	return nil, want()
}

// toFloat accepts every Go number and json.Number (from a decoder with
// UseNumber).
func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// deepCopy copies defaults of type object and array, so that an instance
// changing its input cannot change the definition shared by all.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}
