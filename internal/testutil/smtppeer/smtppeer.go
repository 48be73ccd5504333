// Package smtppeer starts test/peers/smtp/server.js, an SMTP server that
// is not Flowgate's code (nodemailer's smtp-server), with STARTTLS and
// authentication, and collects the messages it receives.
package smtppeer

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil/prereq"
)

// Credentials the peer accepts.
const (
	User     = "flowgate"
	Password = "smtp-test-password"
)

// Message is one message the peer received.
type Message struct {
	From string   `json:"from"`
	To   []string `json:"to"`
	// Secure: the session had switched to TLS.
	Secure bool   `json:"secure"`
	User   string `json:"user"`
	Raw    string `json:"raw"`
}

// Header reads one header of the message.
func (m Message) Header(t testing.TB, name string) string {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(m.Raw))
	if err != nil {
		t.Fatalf("message: %v", err)
	}
	v := msg.Header.Get(name)
	if dec, err := new(mime.WordDecoder).DecodeHeader(v); err == nil {
		return dec
	}
	return v
}

// Bodies returns the decoded text/plain and text/html parts.
func (m Message) Bodies(t testing.TB) (text, html string) {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(m.Raw))
	if err != nil {
		t.Fatalf("message: %v", err)
	}
	var walk func(h map[string][]string, r io.Reader)
	walk = func(h map[string][]string, r io.Reader) {
		get := func(k string) string {
			if v := h[k]; len(v) > 0 {
				return v[0]
			}
			return ""
		}
		mt, params, _ := mime.ParseMediaType(get("Content-Type"))
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(r, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if err != nil {
					return
				}
				walk(p.Header, p)
			}
		}
		if strings.EqualFold(get("Content-Transfer-Encoding"), "quoted-printable") {
			r = quotedprintable.NewReader(r)
		}
		b, _ := io.ReadAll(r)
		switch mt {
		case "text/plain":
			text = string(b)
		case "text/html":
			html = string(b)
		}
	}
	walk(msg.Header, msg.Body)
	return text, html
}

// Peer is a running SMTP server.
type Peer struct {
	Port int
	// TLS verifies the peer's certificate.
	TLS *tls.Config

	cmd  *exec.Cmd
	mu   sync.Mutex
	msgs []Message
	cond chan struct{}
}

// Cert makes a certificate for 127.0.0.1 and the tls.Config that trusts it.
func Cert(t testing.TB) (certFile, keyFile string, trust *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// FreePort returns a port nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start runs the peer on port (0: any) with the certificate files; it
// stops with the test.
func Start(t testing.TB, port int, certFile, keyFile string, trust *tls.Config) *Peer {
	t.Helper()
	dir, err := prereq.PeerDir("smtp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "smtp-server")); err != nil {
		prereq.Missing(t, "smtp peer not installed: run `npm ci --prefix test/peers/smtp` (%v)", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		prereq.Missing(t, "node not found: %v", err)
	}
	cmd := exec.Command(node, "server.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SMTP_PORT="+strconv.Itoa(port), "SMTP_CERT="+certFile, "SMTP_KEY="+keyFile,
		"SMTP_USER="+User, "SMTP_PASS="+Password)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Peer{TLS: trust, cmd: cmd, cond: make(chan struct{})}
	t.Cleanup(p.Stop)
	ready := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			var line struct {
				Listening int `json:"listening"`
				Message
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			if line.Listening != 0 {
				ready <- line.Listening
				continue
			}
			p.mu.Lock()
			p.msgs = append(p.msgs, line.Message)
			close(p.cond)
			p.cond = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	select {
	case p.Port = <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("smtp peer did not start")
	}
	return p
}

// Stop ends the peer.
func (p *Peer) Stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}

// Wait returns the messages once there are at least n, or fails the test
// after timeout.
func (p *Peer) Wait(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		msgs, ch := append([]Message(nil), p.msgs...), p.cond
		p.mu.Unlock()
		if len(msgs) >= n {
			return msgs
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("smtp peer: %d messages after %v, want %d", len(msgs), timeout, n)
		}
	}
}
