package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// The mail outbox. A claim is one UPDATE whose own WHERE clause repeats
// the due condition: on PostgreSQL a second server updating the same rows
// at once waits for the first and then finds them no longer due, so each
// mail goes to one server per attempt.

const mailCols = `id, kind, recipients, cc, subject, body, html, message_id, task_serial, instance_id,
	attempts, last_error, created_at, next_at, sent_at`

// insertMails writes a commit's mails; serials are those of the commit's
// new tasks, in order.
func (s *Store) insertMails(ctx context.Context, tx *sql.Tx, c *store.InstanceCommit, serials []int64, at time.Time) error {
	for _, m := range c.Mails {
		serial := m.TaskSerial
		if m.NewTask > 0 {
			if m.NewTask > len(serials) {
				return fmt.Errorf("mail %s: no new task %d in the commit", m.ID, m.NewTask)
			}
			serial = serials[m.NewTask-1]
		}
		l, err := encodeLists([]string{"to", "cc"}, m.To, m.Cc)
		if err != nil {
			return fmt.Errorf("mail %s: %w", m.ID, err)
		}
		inst := m.InstanceID
		if inst == "" {
			inst = c.Instance.ID
		}
		var task any
		if serial != 0 {
			task = serial
		}
		if _, err := tx.ExecContext(ctx, s.q.rebind(`INSERT INTO mail_outbox (`+mailCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, '', ?, ?, NULL)`),
			m.ID, m.Kind, l[0], l[1], m.Subject, m.Text, m.HTML, m.MessageID, task, inst,
			micros(nowOr(m.CreatedAt, at)), micros(nowOr(m.NextAt, at))); err != nil {
			return fmt.Errorf("queue mail %s: %w", m.ID, err)
		}
	}
	return nil
}

// ClaimMails takes due unsent mails for this server until leaseUntil.
func (s *Store) ClaimMails(ctx context.Context, now, leaseUntil time.Time, limit int) ([]store.Mail, error) {
	if limit <= 0 {
		limit = store.DefaultLimit
	}
	// Every server polls; an idle outbox costs a read, not a write (on
	// SQLite a write would take the one writer every poll).
	var one int
	err := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT 1 FROM mail_outbox WHERE sent_at IS NULL AND next_at <= ? LIMIT 1`),
		micros(now)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("claim mails: %w", err)
	}
	rows, err := s.write.QueryContext(ctx, s.q.rebind(`UPDATE mail_outbox SET next_at = ?, attempts = attempts + 1
		WHERE sent_at IS NULL AND next_at <= ? AND id IN (
			SELECT id FROM mail_outbox WHERE sent_at IS NULL AND next_at <= ? ORDER BY next_at LIMIT ?)
		RETURNING `+mailCols), micros(leaseUntil), micros(now), micros(now), limit)
	if err != nil {
		return nil, fmt.Errorf("claim mails: %w", err)
	}
	defer rows.Close()
	var out []store.Mail
	for rows.Next() {
		m, err := scanMail(rows)
		if err != nil {
			return nil, fmt.Errorf("claim mails: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim mails: %w", err)
	}
	return out, nil
}

// MailSent marks a mail delivered.
func (s *Store) MailSent(ctx context.Context, id string, at time.Time) error {
	return s.updateMail(ctx, id, `UPDATE mail_outbox SET sent_at = ?, last_error = '' WHERE id = ?`, micros(at), id)
}

// MailFailed records a failed attempt.
func (s *Store) MailFailed(ctx context.Context, id, reason string, next time.Time) error {
	return s.updateMail(ctx, id, `UPDATE mail_outbox SET last_error = ?, next_at = ? WHERE id = ? AND sent_at IS NULL`,
		reason, micros(next), id)
}

func (s *Store) updateMail(ctx context.Context, id, query string, args ...any) error {
	res, err := s.write.ExecContext(ctx, s.q.rebind(query), args...)
	if err != nil {
		return fmt.Errorf("mail %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("mail %s: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("mail %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// GetMail reads one mail.
func (s *Store) GetMail(ctx context.Context, id string) (store.Mail, error) {
	m, err := scanMail(s.read.QueryRowContext(ctx, s.q.rebind(`SELECT `+mailCols+` FROM mail_outbox WHERE id = ?`), id))
	if err != nil {
		return store.Mail{}, fmt.Errorf("get mail %s: %w", id, notFound(err))
	}
	return m, nil
}

// PruneMails deletes mail sent before cutoff.
func (s *Store) PruneMails(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM mail_outbox WHERE sent_at IS NOT NULL AND sent_at < ?`), micros(cutoff))
	if err != nil {
		return 0, fmt.Errorf("prune mails: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune mails: %w", err)
	}
	return n, nil
}

func scanMail(sc scanner) (store.Mail, error) {
	var (
		m                 store.Mail
		to, cc            string
		serial, sent      sql.NullInt64
		created, nextTime int64
	)
	if err := sc.Scan(&m.ID, &m.Kind, &to, &cc, &m.Subject, &m.Text, &m.HTML, &m.MessageID, &serial, &m.InstanceID,
		&m.Attempts, &m.LastError, &created, &nextTime, &sent); err != nil {
		return store.Mail{}, err
	}
	var err error
	if m.To, err = decodeList(to); err != nil {
		return store.Mail{}, errors.Join(errors.New("recipients"), err)
	}
	if m.Cc, err = decodeList(cc); err != nil {
		return store.Mail{}, errors.Join(errors.New("cc"), err)
	}
	m.TaskSerial = serial.Int64
	m.CreatedAt, m.NextAt, m.SentAt = fromMicros(created), fromMicros(nextTime), fromNullMicros(sent)
	return m, nil
}
