package flow

import (
	"testing"
	"time"
)

func TestParseTriggersDeadlinesFailOnStatus(t *testing.T) {
	d := mustParse(t, `name: t
input:
  report: {type: string, required: true}
triggers:
  - schedule: "0 7 * * MON-FRI"
    timezone: Europe/Amsterdam
    input: {report: daily}
    missed: run_once
  - webhook: github
    secret: "${{ secrets.gh_hook }}"
    signature: github
  - webhook: other
    secret: "${HOOK_SECRET}"
    signature: hmac
steps:
  - id: call
    type: http
    url: https://example.com/
    fail_on_status: true
  - id: approve
    type: task
    title: T
    assignees: [role:x]
    actions: [Yes]
    due: 2d
    remind: 1d
    escalate: {after: 1d, to: ["user:boss"]}
    on_due: late
    next: {Yes: done}
  - {id: done, type: return}
  - {id: late, type: fail, error: late}
`)
	if !d.Steps[0].HTTP.FailOnStatus {
		t.Error("fail_on_status not read")
	}
	dl := d.Steps[1].Task.Deadline
	if dl == nil || dl.Due != 48*time.Hour || dl.Remind != 24*time.Hour || dl.OnDue != "late" ||
		dl.Escalate == nil || dl.Escalate.After != 24*time.Hour || len(dl.Escalate.To) != 1 {
		t.Fatalf("deadline = %+v", dl)
	}
	s := d.Schedules()
	if len(s) != 1 || s[0].Missed != MissedRunOnce || s[0].Input["report"] != "daily" {
		t.Fatalf("schedules = %+v", s)
	}
	// Monday 2026-12-07 07:00 in Amsterdam is 06:00 UTC.
	from := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC) // a Saturday
	if got, want := s[0].Next(from), time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("next = %v, want %v", got, want)
	}
	if w, ok := d.Webhook("github"); !ok || w.SecretName != "gh_hook" || w.Signature != SignatureGitHub {
		t.Errorf("webhook github = %+v", w)
	}
	if w, ok := d.Webhook("other"); !ok || w.SecretEnv != "HOOK_SECRET" || w.Signature != SignatureHMAC {
		t.Errorf("webhook other = %+v", w)
	}
	// A late step reachable only through on_due is not "unreachable".
}

func TestParseTriggerProblems(t *testing.T) {
	const task = "  - id: a\n    type: task\n    title: T\n    assignees: [role:x]\n    actions: [Yes]\n    next: {Yes: b}\n"
	tests := []struct{ name, src, want string }{
		{"bad cron", "name: t\ntriggers:\n  - schedule: \"61 * * * *\"\nsteps:\n  - {id: a, type: return}\n",
			`t.yaml:3:15: t: triggers[0].schedule: "61 * * * *" is not a cron expression (five fields: minute hour day-of-month month day-of-week, such as "0 7 * * MON-FRI"): end of range (61) above maximum (59): 61`},
		{"bad zone", "name: t\ntriggers:\n  - {schedule: \"* * * * *\", timezone: Mars/Olympus}\nsteps:\n  - {id: a, type: return}\n",
			`t.yaml:3:39: t: triggers[0].timezone: "Mars/Olympus" is not a time zone name (such as Europe/Amsterdam or UTC)`},
		{"schedule input invalid", "name: t\ninput: {n: {type: integer, required: true}}\ntriggers:\n  - {schedule: \"* * * * *\", input: {n: x}}\nsteps:\n  - {id: a, type: return}\n",
			`t.yaml:4:36: t: triggers[0].input: not a valid start input for this flow: input.n: want integer, got string`},
		{"schedule without required input", "name: t\ninput: {n: {type: integer, required: true}}\ntriggers:\n  - {schedule: \"* * * * *\"}\nsteps:\n  - {id: a, type: return}\n",
			`t.yaml:4:5: t: triggers[0].input: not a valid start input for this flow: input.n: required`},
		{"literal secret", "name: t\ntriggers:\n  - {webhook: gh, secret: hunter2hunter2, signature: github}\nsteps:\n  - {id: a, type: return}\n",
			`t.yaml:3:27: t: triggers[0].secret: want ${{ secrets.NAME }} (a named secret) or ${ENV_VAR} (the server's environment); a secret written into the flow would be readable by everyone who can read flows`},
		{"flowgate's own variable", "name: t\ntriggers:\n  - {webhook: gh, secret: \"${FLOWGATE_SECRET_KEY}\", signature: github}\nsteps:\n  - {id: a, type: return}\n",
			`t.yaml:3:27: t: triggers[0].secret: FLOWGATE_SECRET_KEY is one of Flowgate's own settings; give the webhook a variable of its own`},
		{"bad signature", "name: t\ntriggers:\n  - {webhook: gh, secret: \"${X}\", signature: sha1}\nsteps:\n  - {id: a, type: return}\n",
			`t.yaml:3:46: t: triggers[0].signature: "sha1": want github or hmac`},
		{"on_due to missing step", "name: t\nsteps:\n" + task + "    due: 1h\n    on_due: nowhere\n  - {id: b, type: return}\n",
			`t.yaml:10:13: t: step "a": on_due: no step "nowhere"`},
		{"remind without due", "name: t\nsteps:\n" + task + "    remind: 1h\n  - {id: b, type: return}\n",
			`t.yaml:9:5: t: step "a": remind: a reminder is a duration before due; give due too`},
		{"remind not before due", "name: t\nsteps:\n" + task + "    due: 1h\n    remind: 2h\n  - {id: b, type: return}\n",
			`t.yaml:10:13: t: step "a": remind: 2h0m0s before due is at or before the task opens (due is 1h0m0s)`},
		{"escalate without to", "name: t\nsteps:\n" + task + "    escalate: {after: 1h}\n  - {id: b, type: return}\n",
			`t.yaml:9:15: t: step "a": escalate.to: required: the assignees to add (user:NAME, role:NAME, client:ID)`},
		{"escalate bad assignee", "name: t\nsteps:\n" + task + "    escalate: {after: 1h, to: [boss]}\n  - {id: b, type: return}\n",
			``},
		{"fail_on_status not bool", "name: t\nsteps:\n  - {id: a, type: http, url: \"https://x.example/\", fail_on_status: yes please}\n",
			`t.yaml:3:68: t: step "a": fail_on_status: want true or false, not a string`},
		{"expression compile error in due", "name: t\nsteps:\n" + task + "    due: \"${{ nosuch.x }}\"\n  - {id: b, type: return}\n",
			``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), "t.yaml")
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if tt.want == "" {
				ps := Problems(err)
				if len(ps) != 1 || ps[0].Line == 0 || ps[0].Step != "a" {
					t.Fatalf("got %v", err)
				}
				return
			}
			if err.Error() != tt.want {
				t.Errorf("got  %s\nwant %s", err, tt.want)
			}
		})
	}
}
