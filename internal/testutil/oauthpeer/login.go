package oauthpeer

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// DefaultRedirectURI is the code-flow clients' redirect URI when
// Options.RedirectURI is empty (outbound.js's default). Nothing listens
// there: Login stops at the redirect and never follows it.
const DefaultRedirectURI = "http://127.0.0.1:9/callback"

// LoginOptions tune Login.
type LoginOptions struct {
	// Login is the account name typed into the login page; "alice" when
	// empty. devInteractions takes any login and password, and the login
	// becomes the subject of the tokens.
	Login string
	// Deny signs in, then cancels at the consent page (devInteractions'
	// "[ Cancel ]" link), so the provider answers error=access_denied.
	Deny bool
	// Jar keeps the provider's session cookies across logins (a user who
	// already signed in); nil means a fresh jar, a fresh browser.
	Jar http.CookieJar
}

// RedirectURI is where the provider sends the code-flow clients' answers.
func (p *Peer) RedirectURI() string {
	if p.opts.RedirectURI != "" {
		return p.opts.RedirectURI
	}
	return DefaultRedirectURI
}

// maxLoginHops bounds the redirects and pages of one login. A normal one
// takes six (authorize, login page, resume, consent page, resume,
// callback); more means the provider loops.
const maxLoginHops = 20

var (
	// The login and consent pages each have one form; its action is the
	// interaction's submit URL and its hidden prompt field says which
	// page this is.
	formActionRE = regexp.MustCompile(`<form[^>]*\baction="([^"]+)"`)
	promptRE     = regexp.MustCompile(`name="prompt" value="([a-z]+)"`)
	// The layout's "[ Cancel ]" link, the abort endpoint.
	abortRE = regexp.MustCompile(`href="([^"]*/interaction/[^"/]+/abort)"`)
)

// Login plays a user's browser at the provider: it opens authURL (an
// authorization request built by the code under test), signs in on
// devInteractions' login page, confirms (or, with Deny, cancels) on its
// consent page, and returns the redirect to the client's redirect URI
// without following it: its query holds code and state, or error. Pages
// the session makes unnecessary (an earlier sign-in kept in opts.Jar,
// consent already given) are simply not shown by the provider and not
// visited. Any unexpected answer fails the test.
func (p *Peer) Login(t testing.TB, authURL string, opts LoginOptions) (callback *url.URL) {
	t.Helper()
	if opts.Login == "" {
		opts.Login = "alice"
	}
	jar := opts.Jar
	if jar == nil {
		var err error
		if jar, err = cookiejar.New(nil); err != nil {
			t.Fatal(err)
		}
	}
	// Redirects are followed by hand so that the one to the client is
	// seen, not followed.
	hc := &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	redirect, err := url.Parse(p.RedirectURI())
	if err != nil {
		t.Fatalf("redirect URI: %v", err)
	}
	next, err := url.Parse(authURL)
	if err != nil {
		t.Fatalf("authorization URL: %v", err)
	}
	method, form := http.MethodGet, url.Values(nil)
	for range maxLoginHops {
		if isRedirect(next, redirect) {
			return next
		}
		resp, body, err := send(hc, method, next.String(), form)
		if err != nil {
			t.Fatalf("login at the provider: %s %s: %v", method, stripQuery(next), err)
		}
		method, form = http.MethodGet, nil
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := resp.Location()
			if err != nil {
				t.Fatalf("login at the provider: HTTP %d without a usable Location: %v", resp.StatusCode, err)
			}
			next = loc
		case resp.StatusCode == http.StatusOK:
			action, prompt := pageForm(body)
			if action == "" {
				t.Fatalf("login at the provider: %s: a page without a login or consent form:\n%s", stripQuery(next), body)
			}
			switch {
			case prompt == "login":
				method, form = http.MethodPost, url.Values{"prompt": {"login"}, "login": {opts.Login}, "password": {"any"}}
			case prompt == "consent" && opts.Deny:
				m := abortRE.FindStringSubmatch(body)
				if m == nil {
					t.Fatalf("login at the provider: consent page without a cancel link:\n%s", body)
				}
				action = html.UnescapeString(m[1])
			case prompt == "consent":
				method, form = http.MethodPost, url.Values{"prompt": {"consent"}}
			default:
				t.Fatalf("login at the provider: page with prompt %q", prompt)
			}
			if next, err = next.Parse(action); err != nil {
				t.Fatalf("login at the provider: form action %q: %v", action, err)
			}
		default:
			t.Fatalf("login at the provider: %s %s: HTTP %d:\n%s", resp.Request.Method, stripQuery(next), resp.StatusCode, body)
		}
	}
	t.Fatalf("login at the provider: no redirect to %s after %d requests", redirect, maxLoginHops)
	return nil
}

// isRedirect reports whether u is the client's redirect URI (query and
// fragment aside).
func isRedirect(u, redirect *url.URL) bool {
	return u.Scheme == redirect.Scheme && u.Host == redirect.Host && u.Path == redirect.Path
}

func send(hc *http.Client, method, target string, form url.Values) (*http.Response, string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		return nil, "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, "", fmt.Errorf("reading the page: %w", err)
	}
	return resp, string(b), nil
}

// pageForm finds a devInteractions page's form: its action and prompt.
func pageForm(body string) (action, prompt string) {
	a := formActionRE.FindStringSubmatch(body)
	p := promptRE.FindStringSubmatch(body)
	if a == nil || p == nil {
		return "", ""
	}
	return html.UnescapeString(a[1]), p[1]
}

// stripQuery leaves parameters (state, code_challenge…) out of failure
// messages, which only need to say where.
func stripQuery(u *url.URL) string {
	c := *u
	c.RawQuery, c.Fragment = "", ""
	return c.String()
}
