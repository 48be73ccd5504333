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

// Parallel branches and foreach bodies are subgraphs; a branch or a body
// that runs off its end leads to its own end node, and edges into a
// subgraph come after it (Mermaid would otherwise draw a node for them).
func TestMermaidNested(t *testing.T) {
	def, err := Parse([]byte(`name: orders
input:
  lines: {type: array}
steps:
  - id: reviews
    type: parallel
    join: any
    branches:
      legal: [{id: legal-ok, type: task, title: "Legal review", assignees: ["role:legal"], actions: [OK]}]
      finance:
        - {id: finance-ok, type: task, title: "Finance review", assignees: ["role:finance"], actions: [OK, Reject], next: {Reject: finance-no}}
        - {id: finance-no, type: return}
  - id: each-line
    type: foreach
    items: "${{ input.lines }}"
    as: line
    concurrency: 4
    steps:
      - {id: book, type: flow, flow: book-line, input: {sku: "${{ line.sku }}"}}
  - id: done
    type: return
`), "orders.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := `flowchart TD
    start(["start: orders"])
    subgraph s_reviews ["reviews: parallel, join any"]
        subgraph b_reviews_2f_legal ["branch legal"]
            s_legal_2d_ok[/"legal-ok: task"/]
            s_legal_2d_ok -->|"OK"| e_reviews_2f_legal
            e_reviews_2f_legal(["end of branch legal"])
        end
        subgraph b_reviews_2f_finance ["branch finance"]
            s_finance_2d_ok[/"finance-ok: task"/]
            s_finance_2d_ok -->|"OK"| s_finance_2d_no
            s_finance_2d_ok -->|"Reject"| s_finance_2d_no
            s_finance_2d_no(["finance-no: return"])
        end
    end
    subgraph s_each_2d_line ["each-line: foreach line in input.lines, concurrency 4"]
        s_book["book: flow book-line"]
        s_book --> e_each_2d_line
        e_each_2d_line(["end of an item"])
    end
    s_each_2d_line --> s_done
    s_done(["done: return"])
    s_reviews --> s_each_2d_line
    start --> s_reviews
`
	if got := def.Mermaid(); got != want {
		t.Errorf("Mermaid() =\n%s\nwant\n%s", got, want)
	}
}
