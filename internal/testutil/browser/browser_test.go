package browser

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"
)

// The smoke test proves the browser starts here and submits a real form,
// so that page tests fail for their own reasons, not the harness's.
func TestBrowserSubmitsAForm(t *testing.T) {
	got := make(chan string, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `<!doctype html><form method="post" action="/submit"><label>Name <input id="name" name="name"></label><button id="go">Go</button></form>`)
	})
	mux.HandleFunc("POST /submit", func(w http.ResponseWriter, r *http.Request) {
		got <- r.FormValue("name")
		fmt.Fprint(w, `<p id="done">thanks</p>`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := New(t)
	err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL),
		chromedp.SendKeys(chromedp.CSS("#name"), "alice"),
		chromedp.Click(chromedp.CSS("#go")),
	)
	if err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#done")))
	if err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != "alice" || text != "thanks" {
		t.Fatalf("form posted %q, page said %q", v, text)
	}
}
