package connectors_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil/egresstest"
)

// testCtx bounds a test's provider calls well below the test timeout.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recorder is an http.RoundTripper that remembers every request it
// sends, with the form of each POST as it leaves (after the Client's own
// token transport has added params and assertions).
type recorder struct {
	base http.RoundTripper

	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	Method string
	URL    *url.URL
	Header http.Header
	Form   url.Values
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := recorded{Method: req.Method, URL: req.URL, Header: req.Header.Clone()}
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		rec.Form, _ = url.ParseQuery(string(b))
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
	base := r.base
	if base == nil {
		base = egresstest.Loopback().Transport()
	}
	return base.RoundTrip(req)
}

// requests returns what was sent so far, optionally only to paths ending
// in suffix.
func (r *recorder) requests(suffix string) []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recorded
	for _, q := range r.reqs {
		if strings.HasSuffix(q.URL.Path, suffix) {
			out = append(out, q)
		}
	}
	return out
}

func (r *recorder) last(t *testing.T, suffix string) recorded {
	t.Helper()
	reqs := r.requests(suffix)
	if len(reqs) == 0 {
		t.Fatalf("no request to …%s was sent", suffix)
	}
	return reqs[len(reqs)-1]
}

func newClient(t *testing.T, srv store.OAuthServer, opts connectors.Options) *connectors.Client {
	t.Helper()
	if srv.Name == "" {
		srv.Name = "peer"
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = egresstest.Client(5 * time.Second)
	}
	c, err := connectors.New(srv, opts)
	if err != nil {
		t.Fatalf("connectors.New: %v", err)
	}
	return c
}

// pkjwtKeys makes the private_key_jwt client's keys: an RSA key (PKCS#8)
// with kid rsa-1 and a P-256 key (SEC 1) with kid ec-1, their PEM files,
// and the public JWKS the provider registers for jwt-client.
func pkjwtKeys(t testing.TB) (jwks, rsaPath, ecPath string) {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p8, err := x509.MarshalPKCS8PrivateKey(rk)
	if err != nil {
		t.Fatal(err)
	}
	rsaPath = writePEM(t, dir, "rsa.pem", "PRIVATE KEY", p8)
	sec1, err := x509.MarshalECPrivateKey(ek)
	if err != nil {
		t.Fatal(err)
	}
	ecPath = writePEM(t, dir, "ec.pem", "EC PRIVATE KEY", sec1)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &rk.PublicKey, KeyID: "rsa-1", Algorithm: "RS256", Use: "sig"},
		{Key: &ek.PublicKey, KeyID: "ec-1", Algorithm: "ES256", Use: "sig"},
	}}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), rsaPath, ecPath
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// wantKind fails unless err is a *connectors.Error of kind k.
func wantKind(t *testing.T, err error, k connectors.Kind) *connectors.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", k)
	}
	ce, ok := err.(*connectors.Error)
	if !ok {
		t.Fatalf("error %T %v, want *connectors.Error", err, err)
	}
	if ce.Kind != k || connectors.KindOf(err) != k {
		t.Fatalf("error kind %s (%v), want %s", ce.Kind, err, k)
	}
	return ce
}

// notIn fails when any secret appears in s.
func notIn(t *testing.T, what, s string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			t.Fatalf("%s holds a secret (%.6s…): %s", what, sec, s)
		}
	}
}

func testCtxTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}
