// Package flow is the definition layer of flows (docs/flows.md): parsing a
// definition from YAML or JSON, validating it for deploy, compiling its
// ${{ … }} expressions once, evaluating them while an instance runs, and
// checking start input and task data. It has no engine, store or HTTP;
// those build on it.
//
// Decisions where the specification is silent:
//
//   - Routing. Steps run in list order unless next says otherwise. The last
//     step without next ends the instance as completed with no output. A
//     switch without a matching case or default goes on to the following
//     step. A task action missing from the task's next goes on to the
//     following step; when the task is the last step that is refused at
//     deploy, since a decision leading nowhere is more likely a slip.
//     Every step must be reachable from the first.
//   - Strictness. Unknown keys and step types are errors (with a "did you
//     mean" when close). Expressions are refused where a value is static
//     (ids, next, server, method, durations). Step ids are letters,
//     digits, _ and -; input, form and variable names are identifiers so
//     that input.NAME and vars.NAME work. An id with "-" is read in
//     expressions as steps["graph-token"], not steps.graph-token.
//   - Expressions are compiled against a fixed environment (Env): an
//     unknown top-level name, a misspelt instance or user field, an input
//     field not declared, or a step that does not exist fails at deploy.
//     Data inside input, vars and outputs is only known at run time: a
//     missing key reads as nil (interpolated as nothing), and reading a
//     field of nil is a runtime error (use ?. or ??). switch.when must be
//     exactly one expression; a non-boolean result is a compile error
//     when the type is known and a runtime error otherwise.
//   - Named secrets. secrets.NAME (or secrets["NAME"]) must name a
//     constant secret, so each step knows what it reads (SecretNames);
//     using the map otherwise (keys(secrets), secrets[vars.x]) fails at
//     deploy. Whether the secret is set is only known at run time.
//   - Input. Unknown fields are refused, null counts as absent, defaults
//     apply to absent fields, numbers become float64 and integers int.
//     An empty string satisfies required (JSON's meaning of present).
//   - http: method defaults to GET (any case, stored upper), timeout 30s
//     (at most 5m), no retry unless retry is given (attempts 1–10 counting
//     the first, backoff default 1s, at most 1h); auth.as has no default
//     and auth excludes an Authorization header; a literal url must be
//     absolute http(s).
//   - Tasks need a title, at least one assignee and one action.
//     Assignees may be computed (user:${{ input.manager }}); see
//     Task.ResolveAssignees.
//   - return.status may be an expression, checked at run time.
//   - Permissions.Start empty: the flow grants nobody; administrators are
//     the API layer's concern.
//   - Bounds: MaxNodes per expression, expr's memory budget per
//     evaluation, MaxStringBytes for strings expressions make (including
//     repeat()). Flow authors are administrators; these stop accidents.
//   - Not supported: a literal "${{" in text (there is no escape).
package flow
