package authserver

import (
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/flowgate/flowgate/internal/store"
	chrome "github.com/flowgate/flowgate/internal/testutil/browser"
)

// TestBrowserPagesAccessible opens every page the provider shows people in
// one Chromium — login (fresh and after a wrong password), consent, the
// RP-initiated logout confirmation, the sign-out form, the signed-out page
// and an error page — and checks each with axe-core at a phone's width and
// at a desktop's: no serious or critical violation, and at the phone's
// width nothing wider than the screen.
func TestBrowserPagesAccessible(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	rp := newRelyingParty(t, e)
	// A user whose name is a long address: pages that show it must wrap it
	// rather than grow wider than a phone.
	const longName = "alexandra.montgomery.fitzwilliam@engineering.example.com"
	hash, err := e.hasher.Hash(alicePass)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateUser(t.Context(), store.User{Username: longName, PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	ctx := chrome.New(t)

	check := func(name, wantTitle string) {
		t.Helper()
		title, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('h1')?.textContent.trim() || ''`))
		if err != nil || title != wantTitle {
			t.Fatalf("%s: the page's heading is %q (%v), want %q; at %s", name, title, err, wantTitle, location(t, ctx))
		}
		meta, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('meta[name=viewport]')?.content || ''`))
		if err != nil || !strings.Contains(meta, "width=device-width") {
			t.Errorf("%s: meta viewport %q (%v): phones would lay it out at 980px and shrink it", name, meta, err)
		}
		chrome.CheckPage(t, ctx, name)
	}

	if u := navigate(t, ctx, rp.authURL()); u.Path != PathLogin {
		t.Fatalf("authorize landed on %s, want the login page", u)
	}
	check("login", "Sign in")
	if u := signIn(t, ctx, longName, "not-"+alicePass); u.Path != PathLogin {
		t.Fatalf("a wrong password landed on %s, want the login page again", u)
	}
	check("login after a wrong password", "Sign in")
	if err := chromedp.Do(ctx, chromedp.Clear(chromedp.CSS("#username"))); err != nil {
		t.Fatal(err)
	}
	if u := signIn(t, ctx, longName, alicePass); u.Path != PathConsent {
		t.Fatalf("after login at %s, want the consent page", u)
	}
	check("consent", "Allow access?")
	click(t, ctx, `button[value=approve]`)
	rp.result(t, ctx)

	endSession := e.issuer + PathEndSession + "?" + url.Values{"client_id": {"webapp"}}.Encode()
	if u := navigate(t, ctx, endSession); u.Path != PathEndSession {
		t.Fatalf("logout without id_token_hint landed on %s, want the confirmation page", u)
	}
	check("logout confirmation", "Sign out?")
	if u := navigate(t, ctx, e.issuer+PathLogout); u.Path != PathLogout {
		t.Fatalf("the sign-out page is at %s", u)
	}
	check("sign-out form", "Sign out")
	click(t, ctx, `button[type=submit]`)
	check("signed out", "Signed out")

	bad := e.issuer + PathAuthorize + "?" + url.Values{"client_id": {"no-such-client"}, "response_type": {"code"}, "scope": {"openid"},
		"redirect_uri": {"https://rp.example/cb"}}.Encode()
	navigate(t, ctx, bad)
	check("error", "Something went wrong")
}
