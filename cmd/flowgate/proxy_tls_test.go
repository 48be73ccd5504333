package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil/syncbuf"
)

// clientFrom is an HTTP client whose connections leave from a given
// loopback address, so the test can tell a browser, a proxy and Flowgate
// apart on one machine.
func clientFrom(addr string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}, Timeout: 5 * time.Second}
	return &http.Client{
		Transport:     &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// auditRemotes waits for the audit events of a client to be written and
// returns their remote addresses.
func auditRemotes(t *testing.T, dir, client string, want int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := run(t, dir, "", nil, "audit", "--json")
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var e struct {
				Client     string `json:"client"`
				Event      string `json:"event"`
				RemoteAddr string `json:"remote_addr"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Client == client {
				got = append(got, e.RemoteAddr)
			}
		}
		if len(got) >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Behind a reverse proxy (Go's httputil.ReverseProxy, leaving from
// 127.0.0.2, the one trusted proxy) the audit log records the client's
// address (127.0.0.3), not the proxy's, and an X-Forwarded-For the client
// wrote itself is not believed; the same headers sent straight to Flowgate
// by an untrusted peer are ignored. X-Forwarded-Proto: https from the
// proxy makes cookies Secure.
func TestTrustedProxyAddresses(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "flowgate.yaml")
	conf := "server:\n  trusted_proxies: [127.0.0.2]\n" + protocolConfig("")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir, nil, "--config", cfg)
	target, _ := url.Parse(s.base)

	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// Keep what the client sent, then add the client's address,
			// as proxies that append do.
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			pr.SetXForwarded()
			pr.Out.Header.Set("X-Forwarded-Proto", "https")
		},
		Transport: clientFrom("127.0.0.2").Transport,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ps := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = ps.Serve(ln) }()
	t.Cleanup(func() { _ = ps.Close() })
	proxyBase := "http://" + ln.Addr().String()

	browser := clientFrom("127.0.0.3")
	failToken := func(base string, spoof string) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("svc", "wrong-secret")
		if spoof != "" {
			req.Header.Set("X-Forwarded-For", spoof)
			req.Header.Set("X-Forwarded-Proto", "https")
		}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("wrong secret: %d", resp.StatusCode)
		}
	}
	failToken(proxyBase, "")              // through the proxy
	failToken(proxyBase, "198.51.100.9")  // through the proxy, a header of the client's own
	failToken(s.base, "198.51.100.9")     // straight from an untrusted peer, the header is ignored
	got := auditRemotes(t, dir, "svc", 3) // newest first
	if strings.Join(got, ",") != "127.0.0.3,127.0.0.3,127.0.0.3" {
		t.Fatalf("audit remote addresses %v, want the client's (127.0.0.3) every time", got)
	}

	cookieSecure := func(base string, forwardedProto bool) bool {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/login?return_to=/tasks", nil)
		if forwardedProto {
			req.Header.Set("X-Forwarded-Proto", "https")
		}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cs := resp.Header.Values("Set-Cookie")
		if len(cs) == 0 {
			t.Fatalf("GET /login set no cookie")
		}
		return strings.Contains(cs[0], "; Secure")
	}
	if !cookieSecure(proxyBase, false) {
		t.Fatal("through the trusted proxy saying https, the cookie is not Secure")
	}
	if cookieSecure(s.base, true) {
		t.Fatal("an untrusted peer's X-Forwarded-Proto made the cookie Secure")
	}
}

// writeSelfSigned writes a fresh self-signed certificate for 127.0.0.1
// and its key, and returns the certificate.
func writeSelfSigned(t *testing.T, certFile, keyFile string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "flowgate test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// The key first, then the certificate, each written whole by a
	// rename, as a certificate manager does.
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{keyFile, "PRIVATE KEY", kder}, {certFile, "CERTIFICATE", der}} {
		tmp := f.path + ".tmp"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// server.tls: Flowgate serves HTTPS with a certificate made by the test,
// its public URL defaults to https, and a new certificate written while it
// serves is used for the next connections without a restart.
func TestServeTLSReloadsCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeSelfSigned(t, certFile, keyFile, 1)
	cfg := filepath.Join(dir, "flowgate.yaml")
	if err := os.WriteFile(cfg, []byte("server:\n  tls: {cert_file: "+certFile+", key_file: "+keyFile+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(os.Getenv("FLOWGATE_TEST_BINARY"), "serve", "--addr", addr, "--config", cfg)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	logs := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	// get fetches over a new connection, trusting only the current
	// certificate's issuer, and returns the serial of the certificate
	// served.
	roots := x509.NewCertPool()
	roots.AddCert(first)
	get := func(path string) (*http.Response, *big.Int, error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, DisableKeepAlives: true}
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + path)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		return resp, resp.TLS.PeerCertificates[0].SerialNumber, nil
	}
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var resp *http.Response
		if resp, _, err = get("/readyz"); err == nil && resp.StatusCode == 200 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("HTTPS never ready: %v\n%s", err, logs.String())
	}
	code, disc := httpsJSON(t, roots, "https://"+addr+"/.well-known/openid-configuration")
	if code != 200 || disc["issuer"] != "https://"+addr {
		t.Fatalf("discovery over HTTPS: %d issuer %v", code, disc["issuer"])
	}
	// Plain HTTP is not served on the TLS port.
	if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP answered 200 on the TLS port")
		}
	}

	second := writeSelfSigned(t, certFile, keyFile, 2)
	roots.AddCert(second)
	var serial *big.Int
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if _, serial, err = get("/healthz"); err == nil && serial.Int64() == 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if serial == nil || serial.Int64() != 2 {
		t.Fatalf("after the certificate changed, still served serial %v (%v)\n%s", serial, err, logs.String())
	}
	// A broken file keeps the last good certificate.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond)
	if _, serial, err = get("/healthz"); err != nil || serial.Int64() != 2 {
		t.Fatalf("with a broken certificate file: serial %v, %v", serial, err)
	}
	if !strings.Contains(logs.String(), "does not load") {
		t.Fatalf("the broken certificate was not logged:\n%s", logs.String())
	}
}

func httpsJSON(t *testing.T, roots *x509.CertPool, u string) (int, map[string]any) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v
}
