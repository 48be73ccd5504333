package store

import (
	"context"
	"time"
)

// Mail kinds: an email step's message, or a notice about a task that is
// composed when it is sent.
const (
	MailEmail         = "email"
	MailTaskAssigned  = "task_assigned"
	MailTaskReminder  = "task_reminder"
	MailTaskEscalated = "task_escalated"
)

// Mail is one message in the outbox.
type Mail struct {
	// ID is chosen by the writer (a UUID).
	ID   string
	Kind string
	// To and Cc are email addresses, resolved when the mail was queued.
	To, Cc []string
	// Subject, Text and HTML are the message of an email step; task
	// notices leave them empty.
	Subject, Text, HTML string
	// MessageID is the Message-ID header's value, without angle brackets.
	MessageID string
	// TaskSerial is the task a notice is about. NewTask, in a commit that
	// creates tasks, instead names the commit's NewTasks[NewTask-1], whose
	// serial the store fills in.
	TaskSerial int64
	NewTask    int
	InstanceID string
	Attempts   int
	LastError  string
	CreatedAt  time.Time
	// NextAt is when the mail is due (again); a claim moves it ahead as
	// the claimer's lease.
	NextAt time.Time
	// SentAt is zero until the mail server took the message.
	SentAt time.Time
}

// Mails is the outbox: mail is written with the commit that sends it
// (InstanceCommit.Mails) and worked by every server.
type Mails interface {
	// ClaimMails takes up to limit unsent mails due at or before now,
	// moving their NextAt to leaseUntil and counting an attempt, so no
	// other server takes them meanwhile.
	ClaimMails(ctx context.Context, now, leaseUntil time.Time, limit int) ([]Mail, error)
	// MailSent records a mail as delivered to the mail server.
	MailSent(ctx context.Context, id string, at time.Time) error
	// MailFailed records a failed attempt and when to try again.
	MailFailed(ctx context.Context, id, reason string, next time.Time) error
	// GetMail reads a mail; ErrNotFound when there is none.
	GetMail(ctx context.Context, id string) (Mail, error)
	// PruneMails deletes mail sent before cutoff.
	PruneMails(ctx context.Context, cutoff time.Time) (int64, error)
}
