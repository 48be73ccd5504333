package flow

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/flowgate/flowgate/internal/yamlnode"
)

// Trigger starts a flow without an API caller: a schedule or a webhook.
// Exactly one of Schedule and Webhook is set.
type Trigger struct {
	Schedule *Schedule
	Webhook  *Webhook
	// Line and Column locate the trigger in its file.
	Line, Column int
}

// How a schedule treats the times that passed while no server ran.
const (
	MissedRunOnce = "run_once" // one instance for all of them
	MissedSkip    = "skip"     // none
)

// Schedule starts an instance at every time its cron expression names.
type Schedule struct {
	// Cron is the expression as written: five fields (minute hour
	// day-of-month month day-of-week), or six with a leading seconds
	// field.
	Cron string
	// Timezone is the IANA zone the fields are read in; UTC when not given.
	Timezone string
	// Input is the start input of every instance, validated at deploy.
	Input map[string]any
	// Missed is MissedRunOnce or MissedSkip (the default).
	Missed string

	sched cron.Schedule
}

// Key identifies the schedule across versions of its flow: the same
// expression in the same zone is the same schedule, so a new version
// that keeps it does not start a second instance for a time the old one
// already started.
func (s *Schedule) Key() string { return s.Cron + "|" + s.Timezone }

// Next returns the first scheduled time after t.
func (s *Schedule) Next(t time.Time) time.Time { return s.sched.Next(t).UTC() }

// Webhook signature schemes.
const (
	// SignatureGitHub is GitHub's X-Hub-Signature-256: sha256=HEX, the
	// HMAC-SHA256 of the body.
	SignatureGitHub = "github"
	// SignatureHMAC is Flowgate's own: X-Flowgate-Signature sha256=HEX,
	// the HMAC-SHA256 of "TIMESTAMP.BODY", with X-Flowgate-Timestamp
	// (unix seconds) within five minutes.
	SignatureHMAC = "hmac"
)

// Webhook starts an instance for each signed POST /hooks/{flow}/{name}.
type Webhook struct {
	// Name is the last segment of the hook's path.
	Name string
	// Signature is SignatureGitHub or SignatureHMAC.
	Signature string
	// SecretName is the named secret holding the key, when the secret
	// was written ${{ secrets.NAME }}; SecretEnv the environment variable,
	// when it was written ${NAME}. Exactly one is set.
	SecretName string
	SecretEnv  string
}

// Schedules lists the flow's schedules.
func (d *Definition) Schedules() []*Schedule {
	var out []*Schedule
	for _, t := range d.Triggers {
		if t.Schedule != nil {
			out = append(out, t.Schedule)
		}
	}
	return out
}

// Webhook returns the webhook trigger named name.
func (d *Definition) Webhook(name string) (*Webhook, bool) {
	for _, t := range d.Triggers {
		if t.Webhook != nil && t.Webhook.Name == name {
			return t.Webhook, true
		}
	}
	return nil, false
}

// cronParser reads five fields, or six with a leading seconds field (for
// schedules finer than a minute), and the @hourly style descriptors.
func cronParser() cron.Parser {
	return cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

var (
	envSecretRE   = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)
	namedSecretRE = regexp.MustCompile(`^\$\{\{\s*secrets\.([A-Za-z0-9_.-]+)\s*\}\}$`)
	hookNameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
)

func (p *parser) triggers(d *Definition, n *yaml.Node) {
	a := at{field: "triggers"}
	if n.Kind != yaml.SequenceNode {
		p.errf(n, a, "want a list of triggers ({schedule: …} or {webhook: …}), not %s", yamlnode.Describe(n))
		return
	}
	hooks := map[string]int{}
	for i, c := range n.Content {
		c = yamlnode.Resolve(c)
		ta := at{field: "triggers[" + strconv.Itoa(i) + "]"}
		o, ok := p.mapping(c, ta)
		if !ok {
			continue
		}
		t := Trigger{Line: c.Line, Column: c.Column}
		switch {
		case o.get("schedule") != nil && o.get("webhook") != nil:
			p.errf(c, ta, "a trigger is a schedule or a webhook, not both")
			continue
		case o.get("schedule") != nil:
			p.allow(o, ta, "a schedule trigger", "schedule", "timezone", "input", "missed")
			t.Schedule = p.schedule(o, c, ta)
		case o.get("webhook") != nil:
			p.allow(o, ta, "a webhook trigger", "webhook", "secret", "signature")
			t.Webhook = p.webhook(o, c, ta)
			if t.Webhook != nil && t.Webhook.Name != "" {
				if j, dup := hooks[t.Webhook.Name]; dup {
					p.errf(o.get("webhook"), ta.key("webhook"), "duplicate webhook %q (also triggers[%d])", t.Webhook.Name, j)
				}
				hooks[t.Webhook.Name] = i
			}
		default:
			p.errf(c, ta, "a trigger needs schedule (a cron expression) or webhook (a name)")
			continue
		}
		d.Triggers = append(d.Triggers, t)
	}
}

func (p *parser) schedule(o object, n *yaml.Node, a at) *Schedule {
	s := &Schedule{Timezone: "UTC", Missed: MissedSkip}
	loc := time.UTC
	if v := o.get("timezone"); v != nil {
		if tz, ok := p.literal(v, a.key("timezone")); ok {
			l, err := time.LoadLocation(tz)
			if err != nil || tz == "" || strings.EqualFold(tz, "local") {
				p.errf(v, a.key("timezone"), "%q is not a time zone name (such as Europe/Amsterdam or UTC)", tz)
			} else {
				s.Timezone, loc = tz, l
			}
		}
	}
	v := o.get("schedule")
	if expr, ok := p.literal(v, a.key("schedule")); ok {
		s.Cron = expr
		if strings.HasPrefix(strings.TrimSpace(expr), "TZ=") || strings.HasPrefix(strings.TrimSpace(expr), "CRON_TZ=") {
			p.errf(v, a.key("schedule"), "give the zone in timezone, not in the expression")
		} else if sched, err := cronParser().Parse(expr); err != nil {
			p.errf(v, a.key("schedule"), "%q is not a cron expression (five fields: minute hour day-of-month month day-of-week, such as \"0 7 * * MON-FRI\"): %v", expr, err)
		} else if strings.HasPrefix(strings.TrimSpace(expr), "@every") {
			p.errf(v, a.key("schedule"), "@every is not supported: a schedule names times of day, so every server agrees on them")
		} else {
			if spec, ok := sched.(*cron.SpecSchedule); ok {
				spec.Location = loc
			}
			s.sched = sched
		}
	}
	if v := o.get("missed"); v != nil {
		if m, ok := p.literal(v, a.key("missed")); ok {
			if m != MissedRunOnce && m != MissedSkip {
				p.errf(v, a.key("missed"), "%q: want run_once (one instance for the times missed while no server ran) or skip", m)
			} else {
				s.Missed = m
			}
		}
	}
	if v := o.get("input"); v != nil {
		in, _ := plain(v, p.report(a.key("input"))).(map[string]any)
		if in == nil {
			p.errf(v, a.key("input"), "want a mapping of input fields, not %s", yamlnode.Describe(v))
		}
		if hasExpression(in) {
			p.errf(v, a.key("input"), "expressions are not allowed here: a schedule's input is fixed")
		}
		s.Input = in
		p.scheduleInputs = append(p.scheduleInputs, scheduleInput{s: s, n: v, a: a.key("input")})
	} else {
		p.scheduleInputs = append(p.scheduleInputs, scheduleInput{s: s, n: n, a: a.key("input")})
	}
	return s
}

func hasExpression(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.Contains(x, "${{")
	case map[string]any:
		for _, e := range x {
			if hasExpression(e) {
				return true
			}
		}
	case []any:
		return slices.ContainsFunc(x, hasExpression)
	}
	return false
}

func (p *parser) webhook(o object, n *yaml.Node, a at) *Webhook {
	w := &Webhook{}
	v := o.get("webhook")
	if name, ok := p.literal(v, a.key("webhook")); ok {
		if len(name) > 64 || !hookNameRE.MatchString(name) {
			p.errf(v, a.key("webhook"), "%q: a webhook name is lower-case letters, digits and . _ - (the last part of /hooks/FLOW/NAME)", name)
		} else {
			w.Name = name
		}
	}
	if v := o.get("signature"); v == nil {
		p.errf(n, a.key("signature"), "required: github (X-Hub-Signature-256) or hmac (X-Flowgate-Signature with X-Flowgate-Timestamp)")
	} else if s, ok := p.literal(v, a.key("signature")); ok {
		if s != SignatureGitHub && s != SignatureHMAC {
			p.errf(v, a.key("signature"), "%q: want github or hmac", s)
		}
		w.Signature = s
	}
	v = o.get("secret")
	if v == nil {
		p.errf(n, a.key("secret"), "required: ${{ secrets.NAME }} (a named secret) or ${ENV_VAR} (the server's environment)")
		return w
	}
	s, ok := p.text(v, a.key("secret"))
	if !ok {
		return w
	}
	if m := namedSecretRE.FindStringSubmatch(s); m != nil {
		if err := CheckSecretName(m[1]); err != nil {
			p.fail(v, a.key("secret"), err)
		}
		w.SecretName = m[1]
	} else if m := envSecretRE.FindStringSubmatch(s); m != nil {
		if strings.HasPrefix(strings.ToUpper(m[1]), "FLOWGATE_") {
			// The server's own settings (its secret key among them) are
			// not for flows to use.
			p.errf(v, a.key("secret"), "%s is one of Flowgate's own settings; give the webhook a variable of its own", m[1])
		}
		w.SecretEnv = m[1]
	} else {
		// Never echo the value: it may be the secret itself.
		p.fail(v, a.key("secret"), errors.New("want ${{ secrets.NAME }} (a named secret) or ${ENV_VAR} (the server's environment); a secret written into the flow would be readable by everyone who can read flows"))
	}
	return w
}

type scheduleInput struct {
	s *Schedule
	n *yaml.Node
	a at
}

// checkScheduleInputs validates each schedule's input against the flow's
// input fields, so a schedule never fires an instance that cannot start.
func (p *parser) checkScheduleInputs(d *Definition) {
	for _, si := range p.scheduleInputs {
		in, err := d.ValidateInput(si.s.Input)
		if err != nil {
			p.fail(si.n, si.a, fmt.Errorf("not a valid start input for this flow: %w", err))
			continue
		}
		si.s.Input = in
	}
}
