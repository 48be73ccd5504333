package egress

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func mustNew(t *testing.T, allow, deny []string, self ...net.Addr) *Policy {
	t.Helper()
	p, err := New(allow, deny, self...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultDenies(t *testing.T) {
	p := Default()
	for _, c := range []struct{ host, addr, reason string }{
		{"", "127.0.0.1:80", "loopback"},
		{"", "127.1.2.3:443", "loopback"},
		{"", "[::1]:80", "loopback"},
		{"", "[::ffff:127.0.0.1]:80", "loopback"},
		{"", "169.254.169.254:80", "link-local"},
		{"", "[::ffff:169.254.169.254]:80", "link-local"},
		{"", "[fe80::1%eth0]:80", "link-local"},
		{"", "0.0.0.0:8080", "unspecified"},
		{"", "[::]:8080", "unspecified"},
		{"", "[fd00:ec2::254]:80", "cloud metadata"},
		{"localhost", "127.0.0.1:8080", "loopback"},
		{"LocalHost.", "[::1]:8080", "loopback"},
	} {
		err := p.Check(c.host, netip.MustParseAddrPort(c.addr))
		var de *DeniedError
		if !errors.As(err, &de) || de.Reason != c.reason {
			t.Errorf("%s %s: got %v, want denied as %s", c.host, c.addr, err, c.reason)
		}
	}
	for _, addr := range []string{"10.0.0.5:443", "192.168.1.1:80", "93.184.216.34:443", "[2001:db8::1]:443", "[fd00::1]:80", "172.16.0.1:8080"} {
		if err := p.Check("", netip.MustParseAddrPort(addr)); err != nil {
			t.Errorf("%s: %v, want allowed", addr, err)
		}
	}
}

func TestDeniedErrorMessage(t *testing.T) {
	p := Default()
	err := p.Check("127.0.0.1", netip.MustParseAddrPort("127.0.0.1:8080"))
	if want := "egress denied: 127.0.0.1:8080 (loopback) is not allowed by the egress policy"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
	err = p.Check("localhost", netip.MustParseAddrPort("127.0.0.1:8080"))
	if want := "egress denied: localhost:8080 (127.0.0.1, loopback) is not allowed by the egress policy"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

func TestSelfAddress(t *testing.T) {
	// A listener on one address: that address and port only.
	p := mustNew(t, nil, nil, &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 8080})
	if err := p.Check("", netip.MustParseAddrPort("10.1.2.3:8080")); err == nil || !strings.Contains(err.Error(), ReasonSelf) {
		t.Errorf("own address: %v, want denied as %s", err, ReasonSelf)
	}
	if err := p.Check("", netip.MustParseAddrPort("[::ffff:10.1.2.3]:8080")); err == nil {
		t.Error("own address, IPv4-mapped: allowed")
	}
	for _, other := range []string{"10.1.2.3:8081", "10.1.2.4:8080"} {
		if err := p.Check("", netip.MustParseAddrPort(other)); err != nil {
			t.Errorf("%s: %v, want allowed", other, err)
		}
	}

	// A listener on every interface: each interface address at its port.
	p = mustNew(t, nil, nil, &net.TCPAddr{IP: net.IPv6zero, Port: 8080})
	p.localAddrs = func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.ParseIP("10.9.8.7"), Mask: net.CIDRMask(24, 32)}, &net.IPNet{IP: net.ParseIP("2001:db8::7"), Mask: net.CIDRMask(64, 128)}}, nil
	}
	for _, own := range []string{"10.9.8.7:8080", "[2001:db8::7]:8080"} {
		if err := p.Check("", netip.MustParseAddrPort(own)); err == nil || !strings.Contains(err.Error(), ReasonSelf) {
			t.Errorf("%s: %v, want denied as %s", own, err, ReasonSelf)
		}
	}
	for _, other := range []string{"10.9.8.7:9090", "10.9.8.8:8080"} {
		if err := p.Check("", netip.MustParseAddrPort(other)); err != nil {
			t.Errorf("%s: %v, want allowed", other, err)
		}
	}
}

// TestSelfAddressRealInterfaces dials this machine's own non-loopback
// address at the port a listener on every interface holds.
func TestSelfAddressRealInterfaces(t *testing.T) {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	var own netip.Addr
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			own, _ = netip.AddrFromSlice(ipn.IP.To4())
			break
		}
	}
	if !own.IsValid() {
		t.Skip("no non-loopback IPv4 interface address")
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	target := netip.AddrPortFrom(own, port).String()
	// Reachable without the policy: the refusal below is the policy's.
	c, err := net.Dial("tcp", target)
	if err != nil {
		t.Skipf("own address not reachable: %v", err)
	}
	c.Close()
	p := mustNew(t, nil, nil, ln.Addr())
	_, err = p.DialContext(t.Context(), "tcp", target)
	var de *DeniedError
	if !errors.As(err, &de) || de.Reason != ReasonSelf {
		t.Fatalf("dial own address %s: %v, want denied as %s", target, err, ReasonSelf)
	}
}

func TestAllowOverridesAndDenyAdds(t *testing.T) {
	p := mustNew(t, []string{"127.0.0.1", "169.254.0.0/16", "Metadata.Local"}, []string{"10.0.0.0/8", "api.internal.example.", "2001:db8::/32", "::ffff:192.168.0.0/112"})
	for _, c := range []struct{ host, addr string }{
		{"", "127.0.0.1:80"},
		{"", "[::ffff:127.0.0.1]:80"},
		{"", "169.254.169.254:80"},
		{"metadata.local", "127.0.0.9:80"}, // allowed by name, whatever it resolves to
	} {
		if err := p.Check(c.host, netip.MustParseAddrPort(c.addr)); err != nil {
			t.Errorf("%s %s: %v, want allowed", c.host, c.addr, err)
		}
	}
	for _, c := range []struct{ host, addr, reason string }{
		{"", "127.0.0.2:80", "loopback"},
		{"", "[::1]:80", "loopback"},
		{"", "10.1.2.3:443", ReasonDenied},
		{"", "192.168.0.7:443", ReasonDenied},
		{"", "[2001:db8::5]:443", ReasonDenied},
		{"API.internal.example", "93.184.216.34:443", ReasonDeniedHost},
	} {
		err := p.Check(c.host, netip.MustParseAddrPort(c.addr))
		var de *DeniedError
		if !errors.As(err, &de) || de.Reason != c.reason {
			t.Errorf("%s %s: %v, want denied as %s", c.host, c.addr, err, c.reason)
		}
	}
}

func TestBadEntries(t *testing.T) {
	for _, s := range []string{"10.0.0.0/33", "10.0.0.300", "fe80::1%eth0", "not a host", "*.example.com", "host:80", "1.2.3", "-bad.example"} {
		if _, _, err := ParseEntry(s); err == nil {
			t.Errorf("%q: accepted", s)
		}
	}
	_, err := New([]string{"10.0.0.0/33"}, []string{"x y"})
	if err == nil || !strings.Contains(err.Error(), "egress.allow") || !strings.Contains(err.Error(), "egress.deny") {
		t.Errorf("New: %v, want both entries named", err)
	}
	for _, s := range []string{"10.0.0.0/8", "10.0.0.1", "::1", "fd00::/8", "api.example.com", "localhost", "my_host"} {
		if _, _, err := ParseEntry(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// TestClientRefusesAtConnect goes through a real HTTP client: loopback by
// address and by name refused, a redirect from an allowed server to a
// denied one refused, the same with loopback allowed succeeding.
func TestClientRefusesAtConnect(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "internal") }))
	defer target.Close()
	_, port, _ := net.SplitHostPort(target.Listener.Addr().String())

	c := Default().Client(0)
	for _, u := range []string{target.URL, "http://localhost:" + port + "/"} {
		resp, err := c.Get(u)
		if err == nil {
			resp.Body.Close()
		}
		var de *DeniedError
		if !errors.As(err, &de) || de.Reason != "loopback" {
			t.Errorf("GET %s: %v, want denied as loopback", u, err)
		}
	}

	// The redirecting server is reached by the name "localhost", which is
	// allowed; 127.0.0.1, where it sends the client, is not.
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/metrics", http.StatusFound)
	}))
	defer redirector.Close()
	_, rport, _ := net.SplitHostPort(redirector.Listener.Addr().String())
	c = mustNew(t, []string{"localhost"}, nil).Client(0)
	resp, err := c.Get("http://localhost:" + rport + "/")
	if err == nil {
		resp.Body.Close()
	}
	var de *DeniedError
	if !errors.As(err, &de) || de.Addr.String() != target.Listener.Addr().String() {
		t.Errorf("redirect to %s: %v, want denied", target.URL, err)
	}

	c = mustNew(t, []string{"127.0.0.1"}, nil).Client(0)
	resp, err = c.Get(target.URL)
	if err != nil {
		t.Fatalf("allowed loopback: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "internal" {
		t.Errorf("body %q", body)
	}
}

// TestDeniedHostNeverResolved: a host name on the deny list is refused
// before any lookup, so even a name that cannot resolve names the rule.
func TestDeniedHostNeverResolved(t *testing.T) {
	p := mustNew(t, nil, []string{"blocked.invalid"})
	_, err := p.DialContext(t.Context(), "tcp", "BLOCKED.invalid:443")
	var de *DeniedError
	if !errors.As(err, &de) || de.Reason != ReasonDeniedHost {
		t.Fatalf("got %v, want denied as %s", err, ReasonDeniedHost)
	}
	if want := "egress denied: blocked.invalid:443 (host listed in egress.deny) is not allowed by the egress policy"; de.Error() != want {
		t.Errorf("message %q, want %q", de.Error(), want)
	}
}
