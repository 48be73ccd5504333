package notify_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/notify"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
	"github.com/flowgate/flowgate/internal/store/postgres"
	"github.com/flowgate/flowgate/internal/store/sqlite"
	"github.com/flowgate/flowgate/internal/store/storetest"
	"github.com/flowgate/flowgate/internal/testutil/egresstest"
	"github.com/flowgate/flowgate/internal/testutil/pgtest"
	"github.com/flowgate/flowgate/internal/testutil/smtppeer"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const publicURL = "https://flowgate.test"

func backends(t *testing.T, f func(t *testing.T, s backend.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "f.db"), store.Options{Sealer: storetest.NewSealer(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		f(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		s, err := postgres.Open(t.Context(), pgtest.DSN(t), store.Options{Sealer: storetest.NewSealer(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		f(t, s)
	})
}

func newEngine(t *testing.T, s backend.Store) *engine.Engine {
	q, err := s.OpenQueue(t.Context(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(t.Context(), engine.Config{Store: s, Queue: q, Egress: egresstest.Loopback(), PublicURL: publicURL,
		Lease: 2 * time.Second, Sweep: 300 * time.Millisecond, Mail: &engine.MailConfig{TaskNotices: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Close(ctx)
	})
	return e
}

func startSender(t *testing.T, s backend.Store, port int, peerTLS *smtppeerTLS) *notify.Sender {
	snd := notify.Start(t.Context(), notify.Options{Store: s, PublicURL: publicURL, TLSConfig: peerTLS.cfg,
		SMTP: config.SMTP{Host: "127.0.0.1", Port: port, Username: smtppeer.User, Password: smtppeer.Password,
			From: "Flowgate <flowgate@example.com>", StartTLS: true},
		Poll: 100 * time.Millisecond, Backoff: 200 * time.Millisecond, Timeout: 5 * time.Second,
		Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = snd.Close(ctx)
	})
	return snd
}

func users(t *testing.T, s backend.Store) {
	for _, u := range []store.User{
		{Username: "bob", Email: "bob@example.com", Roles: []string{"approver"}},
		{Username: "boss", Email: "boss@example.com"},
		{Username: "carol", Email: "carol@example.com", Roles: []string{"approver"}},
		{Username: "gone", Email: "gone@example.com", Roles: []string{"approver"}, Disabled: true},
	} {
		if err := s.CreateUser(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	}
}

const mailFlow = `
name: mailer
permissions: {start: ["role:employee"]}
input:
  amount: {type: number, required: true}
steps:
  - id: tell
    type: email
    to: ["role:approver", "ops@example.com"]
    cc: "user:boss"
    subject: "Expense of ${{ input.amount }}"
    body: "Someone asks for ${{ input.amount }}."
    html: "<p>Someone asks for <b>${{ input.amount }}</b>.</p>"
  - id: approve
    type: task
    title: "Approve ${{ input.amount }}"
    assignees: ["user:bob"]
    actions: [Yes]
    escalate: {after: 1s, to: ["user:boss"]}
    due: 1m
    remind: 58s
    next: {Yes: done}
  - {id: done, type: return, body: {sent: "${{ steps.tell.output.recipients }}"}}
`

type smtppeerTLS struct{ cfg *tls.Config }

func userOf(name string, roles ...string) flow.User {
	return flow.User{ID: "user:" + name, Kind: "user", Subject: name, Issuer: "flowgate", Roles: roles}
}

// The email step's message, the new task's notice and the escalation's
// reach a real SMTP server over STARTTLS with authentication: recipients
// resolved from principals (a disabled user left out), subject, both
// bodies, and the link to the task at the public URL; the reminder goes to
// every assignee, the escalated one included.
func TestEmailStepAndTaskNotices(t *testing.T) {
	backends(t, func(t *testing.T, s backend.Store) {
		certFile, keyFile, trust := smtppeer.Cert(t)
		peer := smtppeer.Start(t, 0, certFile, keyFile, trust)
		users(t, s)
		e := newEngine(t, s)
		startSender(t, s, peer.Port, &smtppeerTLS{trust})
		if _, _, err := e.Deploy(t.Context(), []byte(mailFlow), "mailer.yaml", "test"); err != nil {
			t.Fatal(err)
		}
		alice := engine.Caller{User: userOf("alice", "employee")}
		st, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "mailer", Input: map[string]any{"amount": 1200}, Caller: alice})
		if err != nil {
			t.Fatal(err)
		}
		msgs := peer.Wait(t, 4, 20*time.Second)
		bySubject := map[string]smtppeer.Message{}
		for _, m := range msgs {
			bySubject[m.Header(t, "Subject")] = m
			if !m.Secure || m.User != smtppeer.User || m.From != "flowgate@example.com" {
				t.Errorf("session: secure %v, user %q, from %q", m.Secure, m.User, m.From)
			}
		}
		step, ok := bySubject["Expense of 1200"]
		if !ok {
			t.Fatalf("no email step message among %v", keys(bySubject))
		}
		wantRcpt := []string{"bob@example.com", "carol@example.com", "ops@example.com", "boss@example.com"}
		if got := slices.Sorted(slices.Values(step.To)); !slices.Equal(got, slices.Sorted(slices.Values(wantRcpt))) {
			t.Errorf("email step recipients %v, want %v", step.To, wantRcpt)
		}
		if cc := step.Header(t, "Cc"); !strings.Contains(cc, "boss@example.com") {
			t.Errorf("Cc: %q", cc)
		}
		text, html := step.Bodies(t)
		if !strings.Contains(text, "Someone asks for 1200.") || !strings.Contains(html, "<b>1200</b>") {
			t.Errorf("bodies: %q / %q", text, html)
		}
		tasks, _, err := s.ListTasks(t.Context(), store.TaskFilter{All: true, InstanceID: st.Instance.ID}, store.Page{})
		if err != nil || len(tasks) != 1 {
			t.Fatalf("tasks %v %v", tasks, err)
		}
		link := publicURL + "/tasks/" + strconv.FormatInt(tasks[0].Serial, 10)
		assigned, ok := bySubject["Task waiting for you: Approve 1200"]
		if !ok || !slices.Equal(assigned.To, []string{"bob@example.com"}) {
			t.Fatalf("assigned notice: %+v (subjects %v)", assigned.To, keys(bySubject))
		}
		if text, _ := assigned.Bodies(t); !strings.Contains(text, link) {
			t.Errorf("assigned notice lacks %s: %q", link, text)
		}
		esc, ok := bySubject["Task escalated to you: Approve 1200"]
		if !ok || !slices.Equal(esc.To, []string{"boss@example.com"}) {
			t.Fatalf("escalation notice: %+v (subjects %v)", esc.To, keys(bySubject))
		}
		if text, _ := esc.Bodies(t); !strings.Contains(text, link) {
			t.Errorf("escalation notice lacks %s: %q", link, text)
		}
		rem, ok := bySubject["Reminder: Approve 1200"]
		if !ok || !slices.Equal(slices.Sorted(slices.Values(rem.To)), []string{"bob@example.com", "boss@example.com"}) {
			t.Fatalf("reminder: %+v (subjects %v)", rem.To, keys(bySubject))
		}
		if text, _ := rem.Bodies(t); !strings.Contains(text, link) || !strings.Contains(text, "Due: ") {
			t.Errorf("reminder lacks the link or the due time: %q", text)
		}
		// The step's output names the message and its recipients.
		recs, _, _ := s.History(t.Context(), st.Instance.ID, store.Page{})
		if len(recs) == 0 || recs[0].StepID != "tell" || !strings.Contains(string(recs[0].Output), "message_id") ||
			!strings.Contains(string(recs[0].Output), "ops@example.com") {
			t.Errorf("email step record: %+v", recs)
		}
		if mid := step.Header(t, "Message-ID"); !strings.Contains(string(recs[0].Output), strings.Trim(mid, "<>")) {
			t.Errorf("Message-ID %q not the step's message_id (%s)", mid, recs[0].Output)
		}
	})
}

// With the mail server down, the step goes on and the message waits; it
// is delivered, once, when the server comes back.
func TestMailWaitsForTheServer(t *testing.T) {
	backends(t, func(t *testing.T, s backend.Store) {
		certFile, keyFile, trust := smtppeer.Cert(t)
		port := smtppeer.FreePort(t)
		users(t, s)
		e := newEngine(t, s)
		startSender(t, s, port, &smtppeerTLS{trust})
		if _, _, err := e.Deploy(t.Context(), []byte(`
name: notice
permissions: {start: ["role:employee"]}
steps:
  - {id: tell, type: email, to: ["user:bob"], subject: "While you were out", body: "Hello"}
  - {id: done, type: return}
`), "n.yaml", "test"); err != nil {
			t.Fatal(err)
		}
		res, err := e.Invoke(t.Context(), engine.StartRequest{Workflow: "notice", Caller: engine.Caller{User: userOf("alice", "employee")}}, false)
		if err != nil {
			t.Fatal(err)
		}
		if res.Instance.Status != store.StatusCompleted {
			t.Fatalf("the flow waited for the mail server: %s", res.Instance.Status)
		}
		time.Sleep(1500 * time.Millisecond) // a few failed attempts
		peer := smtppeer.Start(t, port, certFile, keyFile, trust)
		peer.Wait(t, 1, 30*time.Second)
		time.Sleep(time.Second) // nothing more arrives
		msgs := peer.Wait(t, 1, time.Second)
		if len(msgs) != 1 || msgs[0].Header(t, "Subject") != "While you were out" || !slices.Equal(msgs[0].To, []string{"bob@example.com"}) {
			t.Fatalf("delivered: %d messages %+v", len(msgs), msgs)
		}
		// It was tried while the server was down, and is recorded as sent.
		id, _, _ := strings.Cut(strings.Trim(msgs[0].Header(t, "Message-ID"), "<>"), "@")
		m, err := s.GetMail(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if m.Attempts < 2 || m.SentAt.IsZero() || m.LastError != "" {
			t.Errorf("outbox row: attempts %d, sent %v, last error %q", m.Attempts, m.SentAt, m.LastError)
		}
	})
}

// A message the mail server refuses for good (550, unknown recipient) is
// not tried again, and says why.
func TestMailRefusedForGood(t *testing.T) {
	backends(t, func(t *testing.T, s backend.Store) {
		certFile, keyFile, trust := smtppeer.Cert(t)
		peer := smtppeer.Start(t, 0, certFile, keyFile, trust)
		e := newEngine(t, s)
		startSender(t, s, peer.Port, &smtppeerTLS{trust})
		if _, _, err := e.Deploy(t.Context(), []byte(`
name: bounce
permissions: {start: ["role:employee"]}
steps:
  - {id: tell, type: email, to: [nobody@example.com], subject: "Bounce", body: "Hello"}
`), "b.yaml", "test"); err != nil {
			t.Fatal(err)
		}
		res, err := e.Invoke(t.Context(), engine.StartRequest{Workflow: "bounce", Caller: engine.Caller{User: userOf("alice", "employee")}}, false)
		if err != nil {
			t.Fatal(err)
		}
		recs, _, _ := s.History(t.Context(), res.Instance.ID, store.Page{})
		if len(recs) != 1 {
			t.Fatalf("history %+v", recs)
		}
		var out struct {
			MessageID string `json:"message_id"`
		}
		_ = json.Unmarshal(recs[0].Output, &out)
		id, _, _ := strings.Cut(out.MessageID, "@")
		var m store.Mail
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if m, err = s.GetMail(t.Context(), id); err == nil && m.LastError != "" {
				break
			}
		}
		time.Sleep(time.Second) // no further attempt
		if m, err = s.GetMail(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		if m.Attempts != 1 || !strings.Contains(m.LastError, "refused for good") || !m.SentAt.IsZero() {
			t.Errorf("refused mail: attempts %d, error %q, sent %v", m.Attempts, m.LastError, m.SentAt)
		}
	})
}

func keys(m map[string]smtppeer.Message) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
