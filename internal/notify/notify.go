// Package notify delivers the mail the flow engine queues in the outbox
// (store.Mails): the email step's messages and task notices, over SMTP
// with wneessen/go-mail. Every server runs a sender; each claims due mail
// with a lease, so a message goes to one server per attempt, and a failed
// attempt (the mail server down, a refused recipient) is tried again with
// a growing pause, so mail is delayed, never lost, while the server is
// away.
package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/store"
)

// Defaults of Options.
const (
	DefaultPoll    = time.Second
	DefaultLease   = 2 * time.Minute
	DefaultTimeout = 30 * time.Second
	// maxBackoff caps the pause between attempts of one message.
	maxBackoff = 10 * time.Minute
	batch      = 20
)

// never is the next attempt of a message the mail server refused for good.
func never() time.Time { return time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC) }

// Store is what the sender needs: the outbox and the tasks notices are
// about.
type Store interface {
	store.Mails
	GetTask(ctx context.Context, serial int64) (store.Task, error)
}

// Options configures a Sender.
type Options struct {
	Store Store
	SMTP  config.SMTP
	// PublicURL is the base of the links to tasks.
	PublicURL string
	Logger    *slog.Logger
	// TLSConfig verifies the mail server's certificate; the system's
	// roots when nil.
	TLSConfig *tls.Config
	// Poll is how often the outbox is read; DefaultPoll when zero.
	Poll time.Duration
	// Lease is how long a claimed message is this server's to send;
	// DefaultLease when zero.
	Lease time.Duration
	// Timeout bounds one delivery; DefaultTimeout when zero.
	Timeout time.Duration
	// Backoff is the pause after a first failed attempt, doubling after
	// each further one up to ten minutes; 5 s when zero.
	Backoff time.Duration
}

// Sender works the outbox until Close.
type Sender struct {
	o      Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// Start begins sending.
func Start(ctx context.Context, o Options) *Sender {
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Backoff <= 0 {
		o.Backoff = 5 * time.Second
	}
	o.PublicURL = strings.TrimRight(o.PublicURL, "/")
	s := &Sender{o: o, log: o.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.done.Add(1)
	go s.loop()
	return s
}

// Close stops the sender after the message being sent, if any, until ctx
// ends. Messages not sent stay in the outbox for the next server.
func (s *Sender) Close(ctx context.Context) error {
	s.cancel()
	done := make(chan struct{})
	go func() { s.done.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mail sender: %w", ctx.Err())
	}
}

func (s *Sender) loop() {
	defer s.done.Done()
	t := time.NewTicker(s.o.Poll)
	defer t.Stop()
	for {
		s.SendDue(s.ctx)
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SendDue sends every message due now, batch by batch.
func (s *Sender) SendDue(ctx context.Context) {
	for ctx.Err() == nil {
		now := time.Now()
		ms, err := s.o.Store.ClaimMails(ctx, now, now.Add(s.o.Lease), batch)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("mail: reading the outbox", "err", err)
			}
			return
		}
		for _, m := range ms {
			s.deliver(ctx, m)
		}
		if len(ms) < batch {
			return
		}
	}
}

func (s *Sender) deliver(ctx context.Context, m store.Mail) {
	err := s.send(ctx, m)
	// Record the outcome even when stopping: the message went out or not.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err == nil {
		if err := s.o.Store.MailSent(rctx, m.ID, time.Now()); err != nil {
			s.log.Warn("mail: recording a sent message", "mail", m.ID, "err", err)
		}
		return
	}
	var sendErr *gomail.SendError
	if errors.As(err, &sendErr) && !sendErr.IsTemp() {
		// The mail server refused the message for good (a 5xx answer,
		// such as an unknown recipient): trying again would be refused
		// again. It stays in the outbox with the reason.
		s.log.Error("mail: the mail server refused the message; not trying again", "mail", m.ID, "err", err)
		if err := s.o.Store.MailFailed(rctx, m.ID, "refused for good: "+err.Error(), never()); err != nil {
			s.log.Warn("mail: recording a refused message", "mail", m.ID, "err", err)
		}
		return
	}
	pause := s.o.Backoff << min(max(m.Attempts-1, 0), 16)
	pause = min(pause, maxBackoff)
	s.log.Warn("mail: delivery failed; will try again", "mail", m.ID, "attempt", m.Attempts, "retry_in", pause, "err", err)
	if err := s.o.Store.MailFailed(rctx, m.ID, err.Error(), time.Now().Add(pause)); err != nil {
		s.log.Warn("mail: recording a failed attempt", "mail", m.ID, "err", err)
	}
}

// send composes m and hands it to the mail server.
func (s *Sender) send(ctx context.Context, m store.Mail) error {
	subject, text, html, err := s.compose(ctx, m)
	if err != nil {
		return err
	}
	msg := gomail.NewMsg()
	if err := msg.From(s.o.SMTP.From); err != nil {
		return fmt.Errorf("from: %w", err)
	}
	if err := msg.To(m.To...); err != nil {
		return fmt.Errorf("to: %w", err)
	}
	if len(m.Cc) > 0 {
		if err := msg.Cc(m.Cc...); err != nil {
			return fmt.Errorf("cc: %w", err)
		}
	}
	msg.Subject(subject)
	msg.SetMessageIDWithValue(m.MessageID)
	msg.SetDate()
	msg.SetBodyString(gomail.TypeTextPlain, text)
	if html != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, html)
	}
	client, err := s.client()
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	if err := client.DialAndSendWithContext(sctx, msg); err != nil {
		return fmt.Errorf("smtp %s: %w", s.o.SMTP.Host, err)
	}
	return nil
}

func (s *Sender) client() (*gomail.Client, error) {
	c := s.o.SMTP
	opts := []gomail.Option{gomail.WithPort(c.Port), gomail.WithTimeout(s.o.Timeout)}
	if c.StartTLS {
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
		if s.o.TLSConfig != nil {
			opts = append(opts, gomail.WithTLSConfig(s.o.TLSConfig))
		}
	} else {
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if c.Username != "" {
		// Credentials only over TLS: without STARTTLS, go-mail refuses
		// to send them on a connection that is not encrypted.
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(c.Username), gomail.WithPassword(c.Password))
	}
	cl, err := gomail.NewClient(c.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtp client: %w", err)
	}
	return cl, nil
}

// compose returns the message of m: as queued for an email step, or a
// task notice built from the task as it is now.
func (s *Sender) compose(ctx context.Context, m store.Mail) (subject, text, html string, err error) {
	if m.Kind == store.MailEmail {
		return m.Subject, m.Text, m.HTML, nil
	}
	if m.TaskSerial == 0 {
		return "", "", "", errors.New("a task notice without a task")
	}
	t, err := s.o.Store.GetTask(ctx, m.TaskSerial)
	if err != nil {
		return "", "", "", fmt.Errorf("task %d: %w", m.TaskSerial, err)
	}
	link := s.o.PublicURL + "/tasks/" + strconv.FormatInt(t.Serial, 10)
	var lead string
	switch m.Kind {
	case store.MailTaskAssigned:
		subject, lead = "Task waiting for you: "+t.Title, "A task is waiting for you."
	case store.MailTaskReminder:
		subject, lead = "Reminder: "+t.Title, "A task of yours is still open."
	case store.MailTaskEscalated:
		subject, lead = "Task escalated to you: "+t.Title, "A task was escalated to you: nobody acted on it in time."
	default:
		return "", "", "", fmt.Errorf("unknown mail kind %q", m.Kind)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n%s\n", lead, t.Title)
	if !t.DueAt.IsZero() {
		fmt.Fprintf(&b, "Due: %s\n", t.DueAt.UTC().Format("Mon 2 Jan 2006 15:04 MST"))
	}
	fmt.Fprintf(&b, "\nOpen it: %s\n", link)
	return subject, b.String(), "", nil
}
