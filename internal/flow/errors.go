package flow

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong with a flow definition. Parse returns every
// problem it finds joined with errors.Join, sorted by position, so that one
// deploy shows all of them rather than one per attempt.
type Problem struct {
	// File is the file the definition came from; "" when it came from
	// elsewhere (an API upload).
	File string
	// Line and Column locate the key or value, 1-based; 0 when unknown.
	Line, Column int
	// Flow is the flow's name when it could be read.
	Flow string
	// Step is the step id, or "steps[N]" (or "STEP.branches.NAME[N]", "STEP.steps[N]" in a branch or a foreach body) when the step has no usable id;
	// "" for problems outside the steps.
	Step string
	// Field is the key path inside the step (retry.attempts,
	// cases[0].when) or, outside steps, inside the flow (input.amount.type).
	Field string
	Err   error
}

// Error formats the problem as
// file:line:column: flow: step "id": field: message.
func (p *Problem) Error() string {
	var b strings.Builder
	switch {
	case p.File != "" && p.Line > 0:
		fmt.Fprintf(&b, "%s:%d:%d: ", p.File, p.Line, p.Column)
	case p.File != "":
		b.WriteString(p.File + ": ")
	case p.Line > 0:
		fmt.Fprintf(&b, "line %d:%d: ", p.Line, p.Column)
	}
	writeContext(&b, p.Flow, p.Step, p.Field)
	b.WriteString(p.Err.Error())
	return b.String()
}

// Unwrap returns the underlying error.
func (p *Problem) Unwrap() error { return p.Err }

// writeContext writes "flow: step "id": field: ", leaving out what is
// unknown; shared by deploy problems and runtime evaluation errors so both
// name things the same way.
func writeContext(b *strings.Builder, flow, step, field string) {
	if flow != "" {
		b.WriteString(flow + ": ")
	}
	if step != "" {
		if strings.HasSuffix(step, "]") {
			b.WriteString(step + ": ")
		} else {
			fmt.Fprintf(b, "step %q: ", step)
		}
	}
	if field != "" {
		b.WriteString(field + ": ")
	}
}

// joinProblems sorts problems by position and joins them. Problems without
// a position (line 0) come first: they concern the document as a whole.
func joinProblems(ps []*Problem) error {
	if len(ps) == 0 {
		return nil
	}
	slices.SortStableFunc(ps, func(a, b *Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// Problems lists the problems in an error returned by Parse, in order; nil
// when err holds none.
func Problems(err error) []*Problem {
	if p, ok := err.(*Problem); ok {
		return []*Problem{p}
	}
	var out []*Problem
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, Problems(e)...)
		}
	}
	return out
}

// EvalError is an expression that failed while an instance ran. It names
// the flow, step and field so that the process flow monitor shows where the
// failing expression is written, not only what went wrong.
type EvalError struct {
	Flow, Step, Field string
	// Expr is the template's source text.
	Expr string
	Err  error
}

// Error formats the failure as flow: step "id": field: ${{ … }}: message.
func (e *EvalError) Error() string {
	var b strings.Builder
	writeContext(&b, e.Flow, e.Step, e.Field)
	if e.Expr != "" {
		b.WriteString(shorten(e.Expr, 120) + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying error.
func (e *EvalError) Unwrap() error { return e.Err }

// StepError locates err in step stepID, for the error of an instance,
// which names its flow itself: the message names the step (and the field,
// for an expression) once and the flow not at all. An expression's
// EvalError already names all three, so it loses its flow instead of
// gaining a prefix; adding the prefix regardless is what once gave
// `step "done": expense: step "done": …`.
func StepError(stepID string, err error) error {
	if ee, ok := err.(*EvalError); ok && ee.Step == stepID {
		local := *ee
		local.Flow = ""
		return &local
	}
	var ee *EvalError
	if errors.As(err, &ee) && ee.Step == stepID {
		return err // wrapped, with more to say: it names the step already
	}
	return &EvalError{Step: stepID, Err: err}
}

// shorten keeps long templates (whole request bodies) from flooding error
// messages.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
