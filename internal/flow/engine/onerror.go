package engine

import (
	"context"
	"errors"

	"github.com/flowgate/flowgate/internal/flow"
)

// The kinds of failure steps.<id>.error.type names (docs/flows.md).
const (
	errTypeFail       = "fail"        // a fail step
	errTypeHTTPStatus = "http_status" // an answer that fails an http step
	errTypeNetwork    = "network"     // no answer: connection, timeout, egress refused
	errTypeAuth       = "auth"        // no token for an http step's auth
	errTypeExpression = "expression"  // an expression could not be evaluated
	errTypeLimit      = "limit"       // an engine limit, such as vars_too_large
	errTypeStep       = "step"        // anything else the step refused
)

// stepFailure is a step's failure with what steps.<id>.error shows of it
// beyond the message.
type stepFailure struct {
	kind   string
	status int // the HTTP status, when one applies
	err    error
}

func (f *stepFailure) Error() string { return f.err.Error() }
func (f *stepFailure) Unwrap() error { return f.err }

// errorValue is err as steps.<id>.error: message, type and, where one
// applies, status.
func errorValue(err error) map[string]any {
	v := map[string]any{"message": err.Error(), "type": errTypeStep}
	var f *stepFailure
	var ee *flow.EvalError
	switch {
	case errors.As(err, &f):
		v["message"] = f.err.Error()
		v["type"] = f.kind
		if f.status != 0 {
			v["status"] = f.status
		}
	case errors.Is(err, ErrVarsTooLarge):
		v["type"] = errTypeLimit
	case errors.As(err, &ee):
		v["type"] = errTypeExpression
	}
	return v
}

// caughtCommit follows stepFailed after a step with an effect outside the
// instance (an http call): when on_error caught the failure, the failed
// attempt is committed at once, so a crash before the next durable point
// does not send the request again.
func (r *runner) caughtCommit(ctx context.Context, err error) error {
	if err != nil || !r.caught {
		return err
	}
	return r.commit(ctx)
}
