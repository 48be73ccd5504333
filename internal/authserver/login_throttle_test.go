package authserver

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
)

// browserFrom is a browser whose connections come from ip (any 127/8
// address is the loopback interface), so a test can sign in from several
// addresses. It does not follow redirects: a successful sign-in is the
// redirect itself.
func browserFrom(t *testing.T, ip string) *http.Client {
	b := browser(t)
	b.Transport = &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}
	b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return b
}

// submitLogin posts the login form for Flowgate's own pages and returns the
// status: 303 signed in, 401 refused, 429 throttled.
func (e *env) submitLogin(t *testing.T, b *http.Client, user, pass string) int {
	t.Helper()
	f := formFields(t, get(t, b, e.issuer+LoginURL("/account")))
	f.Set("return_to", "/account")
	f.Set("username", user)
	f.Set("password", pass)
	resp := postForm(t, b, e.issuer+PathLogin, f)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusSeeOther || resp.StatusCode == http.StatusFound {
		if loc, _ := url.Parse(resp.Header.Get("Location")); loc == nil || loc.Path != "/account" {
			t.Fatalf("signed in, redirected to %q, want /account", resp.Header.Get("Location"))
		}
		return http.StatusSeeOther
	}
	return resp.StatusCode
}

// Failures from one address slow that address down for that account, and
// lock nobody else out: alice signs in from her own address while an
// attacker is being refused from another.
func TestLoginThrottleLocksOutNoOne(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	attacker, own := browserFrom(t, "127.0.0.2"), browserFrom(t, "127.0.0.1")
	for i := range 5 {
		if got := e.submitLogin(t, attacker, "alice", "guess"); got != http.StatusUnauthorized {
			t.Fatalf("guess %d: status %d, want 401", i+1, got)
		}
	}
	// The 6th attempt within a second of the 5th failure is refused, even
	// with the right password.
	if got := e.submitLogin(t, attacker, "alice", alicePass); got != http.StatusTooManyRequests {
		t.Fatalf("6th attempt from the guessing address: status %d, want 429", got)
	}
	if got := e.submitLogin(t, own, "alice", alicePass); got != http.StatusSeeOther {
		t.Fatalf("alice from her own address: status %d, want signed in", got)
	}
	// And one person's typos do not block the address for anyone else.
	if got := e.submitLogin(t, attacker, "carol-unknown", "x"); got != http.StatusUnauthorized {
		t.Fatalf("another account from the guessing address: status %d, want 401 (checked, not throttled)", got)
	}
}

// The throttle's state is in the database: a second server (or the first
// one restarted) refuses what the first would.
func TestLoginThrottleSharedByServers(t *testing.T) {
	first := newEnv(t, nil, nil, true)
	second := newEnv(t, first.st, first.ring, false)
	b := browserFrom(t, "127.0.0.1")
	for range 5 {
		if got := first.submitLogin(t, b, "alice", "guess"); got != http.StatusUnauthorized {
			t.Fatalf("guess on the first server: status %d, want 401", got)
		}
	}
	if got := second.submitLogin(t, b, "alice", alicePass); got != http.StatusTooManyRequests {
		t.Fatalf("6th attempt on the second server: status %d, want 429", got)
	}
}
