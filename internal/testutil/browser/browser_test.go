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

// TestAxeFindsAndPasses runs axe-core on a page with known violations and
// on one without, so that page tests can trust both its findings and its
// silence; at Phone width a too-wide page scrolls sideways.
func TestAxeFindsAndPasses(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /bad", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `<!doctype html><html><body><div style="width:900px"><img src="data:,"><input id="q"></div></body></html>`)
	})
	mux.HandleFunc("GET /good", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `<!doctype html><html lang="en"><head><meta name="viewport" content="width=device-width, initial-scale=1"><title>Good</title></head><body><main><h1>Good</h1><label>Name <input id="q"></label></main></body></html>`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := New(t)
	Viewport(t, ctx, Phone, PhoneHeight)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/bad")); err != nil {
		t.Fatal(err)
	}
	found := map[string]Violation{}
	for _, v := range Axe(t, ctx) {
		found[v.ID] = v
	}
	for _, id := range []string{"html-has-lang", "image-alt", "label"} {
		if v, ok := found[id]; !ok || !v.Serious() || len(v.Targets) == 0 {
			t.Errorf("axe on a bad page: %s = %+v, want a serious violation with targets (all: %v)", id, v, found)
		}
	}
	if !ScrollsSideways(t, ctx) {
		t.Error("a 900px wide page does not scroll sideways at 375px")
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/good")); err != nil {
		t.Fatal(err)
	}
	if vs := Axe(t, ctx); len(vs) != 0 {
		t.Errorf("axe on a good page: %v", vs)
	}
	if ScrollsSideways(t, ctx) {
		t.Error("a fluid page scrolls sideways at 375px")
	}
}
