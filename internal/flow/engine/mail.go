package engine

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/principal"
	"github.com/flowgate/flowgate/internal/store"
)

// Email is queued, never sent by the engine: an email step and a task
// notice write their message to the outbox in the commit that records the
// step or the task (store.InstanceCommit.Mails), and the mail sender
// (internal/notify) delivers it, retrying while the mail server is down.
// So a step never waits for a mail server, and no message is lost or sent
// twice by a crash between the step and the send.

// MailConfig turns email on.
type MailConfig struct {
	// TaskNotices emails the assignees of a new task a link to it, the
	// added ones on escalation and all of them on a reminder
	// (notifications.task_assigned).
	TaskNotices bool
}

// ErrMailOff: email is not configured on this server.
var ErrMailOff = errors.New("email is not configured (notifications.smtp.host)")

// addresses resolves recipients (addresses and user:/role: principals) to
// email addresses, each once: a user's address when the account has one
// and is not disabled, every such user of a role.
func (e *Engine) addresses(ctx context.Context, recipients []string) ([]string, error) {
	var out []string
	add := func(a string) {
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	var users []store.User
	usersRead := false
	for _, r := range recipients {
		kind, rest, _ := strings.Cut(r, ":")
		switch kind {
		case principal.KindUser:
			u, err := e.st.GetUser(ctx, rest)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if !u.Disabled {
				add(u.Email)
			}
		case principal.KindRole:
			if !usersRead {
				var err error
				if users, err = e.allUsers(ctx); err != nil {
					return nil, err
				}
				usersRead = true
			}
			for _, u := range users {
				if !u.Disabled && slices.Contains(u.Roles, rest) {
					add(u.Email)
				}
			}
		case principal.KindClient:
		default:
			if a, err := mail.ParseAddress(r); err == nil {
				add(a.String())
			}
		}
	}
	return out, nil
}

func (e *Engine) allUsers(ctx context.Context) ([]store.User, error) {
	var out []store.User
	cursor := ""
	for {
		page, next, err := e.st.ListUsers(ctx, store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

// newMail is a mail of kind with a fresh id and Message-ID.
func (e *Engine) newMail(kind string, to []string) store.Mail {
	id := uuid.Must(uuid.NewV7()).String()
	host := "flowgate"
	if u, err := url.Parse(e.publicURL); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	return store.Mail{ID: id, Kind: kind, To: to, MessageID: id + "@" + host, NextAt: e.now()}
}

// taskNotice queues a notice about a task to recipients, when task notices
// are on and any of them has an address. newTask is the commit's new task
// it is about (1-based), or 0 with serial.
func (r *runner) taskNotice(ctx context.Context, kind string, recipients []string, newTask int, serial int64) {
	if r.e.mail == nil || !r.e.mail.TaskNotices {
		return
	}
	to, err := r.e.addresses(ctx, recipients)
	if err != nil {
		r.e.log.Warn("flow engine: task notice: reading recipients", "instance", r.inst.ID, "err", err)
		return
	}
	if len(to) == 0 {
		return
	}
	m := r.e.newMail(kind, to)
	m.NewTask, m.TaskSerial, m.InstanceID = newTask, serial, r.inst.ID
	r.mails = append(r.mails, m)
}

// runEmail queues the step's message and goes on; its output names the
// message and its recipients.
func (r *runner) runEmail(ctx context.Context, step *flow.Step) error {
	start := r.e.now()
	em := step.Email
	fail := func(err error) error { return r.failStep(step, start, nil, err) }
	if r.e.mail == nil {
		return fail(ErrMailOff)
	}
	toR, err := flow.ResolveRecipients(em.To, &r.env)
	if err != nil {
		return fail(err)
	}
	ccR, err := flow.ResolveRecipients(em.Cc, &r.env)
	if err != nil {
		return fail(err)
	}
	subject, err := em.Subject.EvaluateString(&r.env)
	if err != nil {
		return fail(err)
	}
	body, err := em.Body.EvaluateString(&r.env)
	if err != nil {
		return fail(err)
	}
	var html string
	if em.HTML != nil {
		if html, err = em.HTML.EvaluateString(&r.env); err != nil {
			return fail(err)
		}
	}
	to, err := r.e.addresses(ctx, toR)
	if err != nil {
		return err
	}
	cc, err := r.e.addresses(ctx, ccR)
	if err != nil {
		return err
	}
	if len(to) == 0 {
		return fail(fmt.Errorf("none of %s has an email address", strings.Join(toR, ", ")))
	}
	m := r.e.newMail(store.MailEmail, to)
	m.Cc, m.Subject, m.Text, m.HTML, m.InstanceID = cc, subject, body, html, r.inst.ID
	i := r.record(step, store.StepRunning, 1, start, map[string]any{"to": to, "cc": cc, "subject": subject})
	out := map[string]any{"message_id": m.MessageID, "recipients": append(slices.Clone(to), cc...)}
	r.endRecord(i, step, store.StepCompleted, out, "")
	r.setOutput(step, out)
	r.mails = append(r.mails, m)
	r.inst.CurrentStep = r.def.After(step.ID)
	// A durable point: the mail is queued exactly when the step is
	// recorded as done, so a crash never queues it twice.
	return r.commit(ctx)
}
