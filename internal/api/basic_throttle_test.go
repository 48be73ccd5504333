package api_test

import (
	"encoding/base64"
	"net"
	"net/http"
	"testing"

	"github.com/flowgate/flowgate/internal/config"
)

// Guessing a user's password over HTTP Basic from one address slows that
// address down and locks out nobody else: the user's own integration, from
// another address, goes on working.
func TestBasicThrottleLocksOutNoOne(t *testing.T) {
	e := newEnv(t, "sqlite")
	if err := e.api.SeedSwitches(t.Context(), config.Default().APIs); err != nil {
		t.Fatal(err)
	}
	want(t, e.as("PUT", "/api/v1/admin/api-switches", map[string]any{"basic_auth": true}), 200, "", "")
	e.user("carol", "carol-password", "employee")
	basic := func(p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte("carol:"+p)) }

	attacker := &http.Client{Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	status := func(p string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), "GET", e.srv.URL+"/api/v1/workflows", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", basic(p))
		res, err := attacker.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for i := range 5 {
		if got := status("guess"); got != 401 {
			t.Fatalf("guess %d: status %d, want 401", i+1, got)
		}
	}
	if got := status("carol-password"); got != 429 {
		t.Fatalf("6th attempt from the guessing address: status %d, want 429", got)
	}
	// carol's own calls come from 127.0.0.1.
	want(t, e.do("GET", "/api/v1/workflows", basic("carol-password"), nil), 200, "", "")
}
