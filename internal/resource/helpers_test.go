package resource

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/flowgate/flowgate/internal/testutil/egresstest"
	"github.com/flowgate/flowgate/internal/testutil/prereq"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// quietLogger keeps expected warnings (issuers down on purpose) out of test output unless -v.
func quietLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testKeys is a signing key with its kid.
type testKey struct {
	kid    string
	method jwt.SigningMethod
	priv   any
	pub    any
}

func newRSAKey(tb testing.TB, kid string) testKey {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	return testKey{kid: kid, method: jwt.SigningMethodRS256, priv: k, pub: &k.PublicKey}
}

func newECKey(tb testing.TB, kid string) testKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return testKey{kid: kid, method: jwt.SigningMethodES256, priv: k, pub: &k.PublicKey}
}

// sign makes a compact JWS of claims with k.
func (k testKey) sign(tb testing.TB, claims jwt.MapClaims) string {
	tb.Helper()
	tok := jwt.NewWithClaims(k.method, claims)
	if k.kid != "" {
		tok.Header["kid"] = k.kid
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// signWithHeader is sign with extra header parameters.
func (k testKey) signWithHeader(tb testing.TB, claims jwt.MapClaims, header map[string]any) string {
	tb.Helper()
	tok := jwt.NewWithClaims(k.method, claims)
	tok.Header["kid"] = k.kid
	for name, v := range header {
		tok.Header[name] = v
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// claimsFor returns valid claims for iss/aud, valid for 5 minutes.
func claimsFor(iss, aud, sub string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": iss, "aud": aud, "sub": sub,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"jti": fmt.Sprintf("jti-%d", now.UnixNano()),
	}
}

// jwksOf is the public JWK Set of keys.
func jwksOf(tb testing.TB, keys ...testKey) []byte {
	tb.Helper()
	st := jwkset.NewMemoryStorage()
	for _, k := range keys {
		jwk, err := jwkset.NewJWKFromKey(k.pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			KID: k.kid, USE: jwkset.UseSig, ALG: jwkset.ALG(k.method.Alg()),
		}})
		if err != nil {
			tb.Fatal(err)
		}
		if err := st.KeyWrite(context.Background(), jwk); err != nil {
			tb.Fatal(err)
		}
	}
	raw, err := st.JSONPublic(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// goIssuer is a minimal OpenID issuer in Go (metadata + JWKS on 127.0.0.1), used to sign the
// tokens no real provider would issue: expired, alg none, HS256, tampered…
type goIssuer struct {
	srv          *httptest.Server
	iss          string
	mu           sync.Mutex
	keys         []testKey
	jwksHits     atomic.Int64
	metadataDown atomic.Bool // answer 503 to metadata requests
	jwksDown     atomic.Bool // answer 503 to JWKS requests
	noJWKSURI    atomic.Bool // metadata without jwks_uri
}

func newGoIssuer(tb testing.TB, keys ...testKey) *goIssuer {
	tb.Helper()
	gi := &goIssuer{keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		if gi.metadataDown.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		md := map[string]string{"issuer": gi.iss}
		if !gi.noJWKSURI.Load() {
			md["jwks_uri"] = gi.iss + "/jwks"
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(md)
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		gi.jwksHits.Add(1)
		if gi.jwksDown.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		gi.mu.Lock()
		body := jwksOf(tb, gi.keys...)
		gi.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	gi.srv = httptest.NewServer(mux)
	gi.iss = gi.srv.URL
	tb.Cleanup(gi.srv.Close)
	return gi
}

// ownSetup is Flowgate's own issuer backed by in-process keys and maps for the store.
type ownSetup struct {
	own     OwnIssuer
	keys    map[string]testKey
	revoked sync.Map // jti -> true
}

const ownIss = "https://flowgate.example"

func newOwnSetup(tb testing.TB, keys ...testKey) *ownSetup {
	tb.Helper()
	s := &ownSetup{keys: map[string]testKey{}}
	for _, k := range keys {
		s.keys[k.kid] = k
	}
	// A user and a client may share a name: "ops".
	users := map[string][]string{"alice": {"employee", "approver"}, "ops": {"employee"}}
	clients := map[string][]string{"portal": {"invoicer"}, "ops": {"admin"}}
	s.own = OwnIssuer{
		Issuer:    ownIss,
		Audiences: []string{"https://flowgate.example/api"},
		Keys: func(t *jwt.Token) (any, error) {
			kid, _ := t.Header["kid"].(string)
			k, ok := s.keys[kid]
			if !ok {
				return nil, fmt.Errorf("no key %q", kid)
			}
			return k.pub, nil
		},
		Revoked: func(_ context.Context, jti string) (bool, error) {
			_, ok := s.revoked.Load(jti)
			return ok, nil
		},
		ClientRoles: func(_ context.Context, id string) ([]string, error) {
			r, ok := clients[id]
			if !ok {
				return nil, fmt.Errorf("client %q: %w", id, ErrUnknownPrincipal)
			}
			return r, nil
		},
		UserRoles: func(_ context.Context, name string) ([]string, error) {
			r, ok := users[name]
			if !ok {
				return nil, fmt.Errorf("user %q: %w", name, ErrUnknownPrincipal)
			}
			return r, nil
		},
	}
	return s
}

// wantTokenError checks err is a *TokenError with code and a description containing want.
func wantTokenError(tb testing.TB, err error, code string, want ...string) *TokenError {
	tb.Helper()
	te, ok := err.(*TokenError)
	if !ok {
		tb.Fatalf("error = %v (%T), want *TokenError %s", err, err, code)
	}
	if te.Code != code {
		tb.Fatalf("code = %q (%s), want %q", te.Code, te.Description, code)
	}
	for _, w := range want {
		if !strings.Contains(te.Description, w) {
			tb.Fatalf("description = %q, want it to contain %q", te.Description, w)
		}
	}
	return te
}

// peer is a running test/peers/oidc-provider.
type peer struct {
	issuer string
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *strings.Builder
}

// startPeer starts the node oidc-provider peer on a free port. Without node or the peer's
// node_modules the test is skipped, or fails when CI=true, so CI cannot silently skip it.
func startPeer(t *testing.T, env ...string) *peer {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		prereq.Missing(t, "node not found: %v (install Node.js 20+)", err)
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "test", "peers", "oidc-provider"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider")); err != nil {
		prereq.Missing(t, "oidc-provider peer not installed: run `npm ci --prefix test/peers/oidc-provider` (%v)", err)
	}
	cmd := exec.Command(node, "server.js", "0")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{cmd: cmd, done: make(chan struct{}), stderr: &strings.Builder{}}
	cmd.Stderr = &lockedWriter{w: p.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)

	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if iss, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				ready <- iss
			}
		}
	}()
	select {
	case p.issuer = <-ready:
	case <-p.done:
		t.Fatalf("oidc-provider peer exited: %s", p.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("oidc-provider peer not ready after 30s: %s", p.stderr)
	}
	return p
}

// stop kills the peer and waits for it to exit.
func (p *peer) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// token gets an access token from the peer with client credentials.
func (p *peer) token(t *testing.T, resource string, scopes ...string) string {
	t.Helper()
	cc := clientcredentials.Config{
		ClientID:     "flowgate-test",
		ClientSecret: "flowgate-test-secret",
		TokenURL:     p.issuer + "/token",
		Scopes:       scopes,
		AuthStyle:    oauth2.AuthStyleInHeader,
	}
	if resource != "" {
		cc.EndpointParams = url.Values{"resource": {resource}}
	}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatalf("client credentials at the peer: %v", err)
	}
	return tok.AccessToken
}

// stats returns the number of JWKS requests the peer served.
func (p *peer) jwksRequests(t *testing.T) int {
	t.Helper()
	var s struct {
		JWKSRequests int `json:"jwks_requests"`
	}
	p.admin(t, http.MethodGet, "/admin/stats", &s)
	return s.JWKSRequests
}

// rotate makes the peer sign with a new key, keeping the old ones published.
func (p *peer) rotate(t *testing.T) string {
	t.Helper()
	var r struct {
		KID string `json:"kid"`
	}
	p.admin(t, http.MethodPost, "/admin/rotate", &r)
	return r.KID
}

func (p *peer) admin(t *testing.T, method, path string, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, p.issuer+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// kidOf returns the kid in a token's header.
func kidOf(t *testing.T, raw string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

// newTestValidator is NewValidator with the tests' issuers on 127.0.0.1
// reachable, which the default egress policy refuses.
func newTestValidator(ctx context.Context, own OwnIssuer, issuers []IssuerConfig, opts Options) (*Validator, error) {
	if opts.HTTPClient == nil {
		opts.HTTPClient = egresstest.Client(0)
	}
	return NewValidator(ctx, own, issuers, opts)
}
