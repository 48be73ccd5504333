package flow

import "testing"

func TestMermaid(t *testing.T) {
	def, err := Parse([]byte(`name: expense
title: Expense "approval"
input:
  amount: {type: number}
steps:
  - id: check
    type: switch
    cases:
      - when: ${{ input.amount > 100 }}
        next: approve
    default: book
  - id: approve
    type: task
    title: Approve
    assignees: ["role:approver"]
    actions: [approve, reject]
    next: {reject: rejected}
  - id: book
    type: http
    method: POST
    url: https://books.example/entries
    next: last-one
  - id: rejected
    type: fail
    error: rejected
  - id: last-one
    type: set
    vars: {booked: true}
`), "expense.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := `flowchart TD
    start(["start: Expense #quot;approval#quot;"])
    start --> s_check
    s_check{"check: switch"}
    s_check -->|"input.amount #gt; 100"| s_approve
    s_check -->|"otherwise"| s_book
    s_approve[/"approve: task"/]
    s_approve -->|"approve"| s_book
    s_approve -->|"reject"| s_rejected
    s_book["book: http"]
    s_book --> s_last_2d_one
    s_rejected(["rejected: fail"])
    s_last_2d_one["last-one: set"]
    s_last_2d_one --> done
    done([completed])
`
	if got := def.Mermaid(); got != want {
		t.Errorf("Mermaid() =\n%s\nwant\n%s", got, want)
	}
}
