package flow

import (
	"time"
)

// StepType names what a step does.
type StepType string

// The step types (docs/flows.md).
const (
	TypeHTTP             StepType = "http"
	TypeOAuthServerLogin StepType = "oauth_server_login"
	TypeOAuthUserLogin   StepType = "oauth_user_login"
	TypeOAuthRefresh     StepType = "oauth_refresh"
	TypeTask             StepType = "task"
	TypeSwitch           StepType = "switch"
	TypeSet              StepType = "set"
	TypeWait             StepType = "wait"
	TypeReturn           StepType = "return"
	TypeFail             StepType = "fail"
	TypeEmail            StepType = "email"
	TypeFlow             StepType = "flow"
	TypeParallel         StepType = "parallel"
	TypeForeach          StepType = "foreach"
)

// stepTypes lists the types in the order error messages show them.
func stepTypes() []StepType {
	return []StepType{TypeHTTP, TypeOAuthServerLogin, TypeOAuthUserLogin, TypeOAuthRefresh,
		TypeTask, TypeSwitch, TypeSet, TypeWait, TypeReturn, TypeFail, TypeEmail, TypeFlow,
		TypeParallel, TypeForeach}
}

// Definition is one flow as deployed: parsed, validated and with every
// expression compiled. Definitions come from Parse and are read-only
// afterwards, so one value can serve every instance of its version
// concurrently.
type Definition struct {
	// Name identifies the flow across versions: [a-z0-9][a-z0-9-_.]*, at
	// most 64 characters.
	Name string
	// Title is for people; Name when the definition has none.
	Title string
	// Description is free text for people; optional.
	Description string
	// Version is set by the store on deploy; Parse leaves it 0.
	Version int
	// Permissions says who may start the flow.
	Permissions Permissions
	// Input describes the start input; InputOrder keeps the declaration
	// order for forms and listings.
	Input      map[string]Field
	InputOrder []string
	// Steps run in list order unless a step's next says otherwise. The
	// branches of parallel steps and the bodies of foreach steps hold
	// lists of their own; Step finds a step in any of them.
	Steps []Step
	// Triggers start the flow without an API caller: schedules and
	// webhooks, in the order written.
	Triggers []Trigger
	// File is the filename given to Parse.
	File string
	// Document is the definition as plain data (maps, lists, strings,
	// numbers, booleans) for APIs that show "the definition" as JSON.
	Document map[string]any

	index map[string]stepPos // step id -> where it is, nested lists included
	// servers are the OAuth servers steps name, for CheckServers.
	servers []serverUse
}

// Permissions lists principals (docs/flows.md: user:NAME, role:NAME,
// client:ID, or ISSUER:SUBJECT for callers of a trusted external issuer).
type Permissions struct {
	// Start may start instances. Empty means nobody is granted by the
	// flow itself; callers with the admin role are the API layer's
	// business.
	Start []string
}

// Field is one input or task form field.
type Field struct {
	// Type is string, number, integer, boolean, object or array.
	Type string
	// Required fields must be present and not null.
	Required bool
	// Description is for people (forms, listings); optional.
	Description string
	// Enum, when not empty, lists the only values accepted.
	Enum []any
	// Default is applied when the field is absent; nil when none.
	Default any
}

// Step is one step of a flow. Exactly one of the typed configurations is
// set, the one matching Type.
type Step struct {
	ID   string
	Type StepType
	// Next is the step that follows a step with one way on; "" means the
	// step after it in the list (or, for the last step, completion).
	// Tasks use Task.Next, switches their cases and default; return and
	// fail have none.
	Next string
	// Description is free text for people; optional.
	Description string
	// OnError is the step the instance goes to when this step fails
	// (after its retries) instead of failing, with steps.<id>.error set;
	// "" means a failure fails the instance.
	OnError string
	// Line and Column locate the step in its file.
	Line, Column int

	HTTP             *HTTP
	OAuthServerLogin *OAuthServerLogin
	OAuthUserLogin   *OAuthUserLogin
	OAuthRefresh     *OAuthRefresh
	Task             *Task
	Switch           *Switch
	Set              *Set
	Wait             *Wait
	Return           *Return
	Fail             *Fail
	Email            *Email
	SubFlow          *SubFlow
	Parallel         *Parallel
	Foreach          *Foreach

	// secrets are the named secrets the step's expressions read.
	secrets []string
}

// SecretNames lists the named secrets (secrets.NAME) the step's
// expressions read, each once: what the engine reads from the store before
// the step runs, and nothing else.
func (s *Step) SecretNames() []string { return s.secrets }

// HTTP calls an API.
type HTTP struct {
	// Method is an upper-case HTTP method; GET when not given.
	Method string
	URL    *Template
	// Headers, Query and Form values are templates. A query or form value
	// that is one expression giving a list sends the key once per item.
	Headers map[string]*Template
	Query   map[string]*Template
	// Body is sent as JSON: a tree of maps, lists and scalars whose
	// strings may be templates (see EvaluateTree). Body and Form exclude
	// each other; HasBody says whether a body was given, since a JSON
	// null body is a body too.
	Body    any
	HasBody bool
	// Form is sent as application/x-www-form-urlencoded.
	Form map[string]*Template
	// Timeout bounds each attempt; 30s when not given.
	Timeout time.Duration
	// Auth, when set, adds a bearer token from an OAuth server.
	Auth *HTTPAuth
	// Retry applies to network errors and 5xx answers.
	Retry Retry
	// FailOnStatus makes a final answer outside 2xx (after retries), and
	// an auth that yields no token, fail the step instead of being data.
	FailOnStatus bool
}

// Who an HTTP step's token is for.
const (
	AuthAsStarter = "starter" // the user who started the instance (vault token)
	AuthAsService = "service" // Flowgate itself (client credentials)
)

// HTTPAuth names the OAuth server whose token an HTTP step sends.
type HTTPAuth struct {
	Server string
	// As is AuthAsStarter or AuthAsService.
	As string
}

// Retry is an HTTP step's retry policy. Attempts counts every try, the
// first included: 1 (the default) means no retry.
type Retry struct {
	Attempts int
	// Backoff is the wait before the second attempt; the engine may grow
	// it for later ones. 1s when retry is given without it.
	Backoff time.Duration
}

// OAuthServerLogin gets a token with client credentials.
type OAuthServerLogin struct {
	Server string
	// Scope overrides the server's configured scopes; nil when not given.
	Scope *Template
}

// OAuthUserLogin sends the starter to the OAuth server to sign in and
// consent.
type OAuthUserLogin struct {
	Server string
	// Scope overrides the server's configured scopes; nil when not given.
	Scope *Template
	// UsePrompt overrides the server's use_prompt; nil when not given.
	UsePrompt *bool
}

// OAuthRefresh exchanges a refresh token for new tokens.
type OAuthRefresh struct {
	Server       string
	RefreshToken *Template
}

// Task asks people (or a client) to choose one of its actions.
type Task struct {
	Title *Template
	// Assignees are user:NAME, role:NAME or client:ID; a template may
	// compute them (see ResolveAssignees).
	Assignees []*Template
	Actions   []string
	// Form describes the data an action may carry; FormOrder keeps the
	// declaration order.
	Form      map[string]Field
	FormOrder []string
	// Next maps an action to the step it leads to; an action not listed
	// goes on to the step after the task in the list.
	Next map[string]string
	// Deadline is the task's due date, reminder, escalation and where it
	// goes when due; nil when it has none.
	Deadline *Deadline
}

// TimeoutAction is the action a task closes with when its due time passes
// and it has on_due.
const TimeoutAction = "timeout"

// Deadline is when a task is due and what happens around that time.
type Deadline struct {
	// Due is how long after the task opens it is due; DueExpr is set
	// instead when due is an expression giving a time (or an RFC 3339
	// string). Both are empty when the task has escalate alone.
	Due     time.Duration
	DueExpr *Template
	// Remind is how long before the due time the assignees are reminded;
	// 0 for no reminder.
	Remind time.Duration
	// Escalate adds assignees after a while without action; nil when
	// not given.
	Escalate *Escalation
	// OnDue is the step the instance goes to when the due time passes
	// without action (the task closes with TimeoutAction); empty means
	// a due time only marks the task overdue.
	OnDue string
}

// HasDue reports whether the task has a due time.
func (d *Deadline) HasDue() bool { return d != nil && (d.Due > 0 || d.DueExpr != nil) }

// Escalation adds To as assignees After the task opened without action.
type Escalation struct {
	After time.Duration
	// To are assignees as in Task.Assignees.
	To []*Template
}

// Switch goes to the next of the first case whose when is true, else to
// Default, else to the step after it in the list.
type Switch struct {
	Cases   []Case
	Default string
}

// Case is one branch of a switch.
type Case struct {
	// When is one ${{ … }} expression giving true or false.
	When *Template
	Next string
}

// Set assigns instance variables.
type Set struct {
	// Vars maps a variable name to a value tree (see EvaluateTree);
	// VarsOrder keeps the declaration order, the order of assignment.
	Vars      map[string]any
	VarsOrder []string
}

// Wait pauses the instance for Duration or until Until; exactly one is set.
type Wait struct {
	Duration time.Duration
	// Until is an RFC 3339 time or an expression giving a time (a
	// time.Time or an RFC 3339 string).
	Until *Template
}

// Return ends the instance as completed, answering an invoke with Status,
// Headers and Body.
type Return struct {
	// Status is the HTTP status, 200 when not given. StatusExpr is set
	// instead when the status is an expression.
	Status     int
	StatusExpr *Template
	Headers    map[string]*Template
	Body       any
	HasBody    bool
}

// SubFlow starts a child instance of another deployed flow, its latest
// version when the step runs, as the same principal, and waits for it.
type SubFlow struct {
	// Flow is the child flow's name.
	Flow string
	// Input is the child's start input: a tree whose strings may be
	// templates (see EvaluateTree); nil for none.
	Input any
}

// How a parallel step joins its branches.
const (
	// JoinAll waits for every branch; one failing fails the step.
	JoinAll = "all"
	// JoinAny ends the step when the first branch completes; the others
	// are cancelled.
	JoinAny = "any"
)

// MaxConcurrency is the most items a foreach step runs at once.
const MaxConcurrency = 50

// MaxBranches is the most branches a parallel step has.
const MaxBranches = 20

// Parallel runs branches at the same time and joins them.
type Parallel struct {
	// Branches in the order written; the output lists them by name.
	Branches []Branch
	// Join is JoinAll or JoinAny.
	Join string
}

// Branch is one named list of steps of a parallel step. Its steps' next
// stays inside it; it ends when it runs off its end or at a return.
type Branch struct {
	Name  string
	Steps []Step
}

// Foreach runs its body once per item of a list.
type Foreach struct {
	// Items is an expression giving the list.
	Items *Template
	// As names the item inside the body; As+"_index" is its index.
	As string
	// Concurrency is how many items run at once, 1 (in order) or more.
	Concurrency int
	// Steps is the body, run for each item.
	Steps []Step
}

// Scope names the list a step is in: "" for the flow's own steps,
// "STEP/BRANCH" for a branch of parallel step STEP, "STEP" for the body of
// foreach step STEP.
func (d *Definition) Scope(id string) string { return d.index[id].scope }

// Locals lists the names a step's expressions see besides the usual ones:
// the item and index names of every foreach the step is inside, outermost
// first.
func (d *Definition) Locals(id string) []string { return d.index[id].locals }

// Fail ends the instance as failed with the message Error.
type Fail struct {
	Error *Template
}

// Step returns the step with the given id.
func (d *Definition) Step(id string) (*Step, bool) {
	p, ok := d.index[id]
	if !ok {
		return nil, false
	}
	return &p.list[p.i], true
}

// stepPos is where a step is: its list (sharing the definition's backing
// array), its position in it, the list's scope and the foreach names its
// expressions see.
type stepPos struct {
	list   []Step
	i      int
	scope  string
	locals []string
	// label is where it is written: steps[2], reviews.branches.legal[0].
	label string
}

// Secrets lists the output keys of the step that hold secrets: the tokens
// an OAuth connector returns. The monitor and the logs show them masked
// (see Mask) and the store keeps them only encrypted.
func (s *Step) Secrets() []string {
	switch s.Type {
	case TypeOAuthServerLogin, TypeOAuthUserLogin, TypeOAuthRefresh:
		return []string{"access_token", "refresh_token"}
	}
	return nil
}

// Mask returns a copy of output in which the values of secretKeys that are
// present read "****". output itself is not changed; keys absent from it
// stay absent, so masking never suggests a token that was not issued.
func Mask(output map[string]any, secretKeys []string) map[string]any {
	if output == nil {
		return nil
	}
	out := make(map[string]any, len(output))
	for k, v := range output {
		out[k] = v
	}
	for _, k := range secretKeys {
		if _, ok := out[k]; ok {
			out[k] = "****"
		}
	}
	return out
}
