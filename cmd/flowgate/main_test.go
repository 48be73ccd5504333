package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil/pgtest"
	"github.com/flowgate/flowgate/internal/testutil/syncbuf"
)

// The tests run the real binary: flags, environment, exit codes and signals
// are what users meet, and only a separate process shows them.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flowgate-bin")
	if err != nil {
		panic(err)
	}
	bin := filepath.Join(dir, "flowgate")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building flowgate: %v\n%s", err, out)
		os.Exit(1)
	}
	os.Setenv("FLOWGATE_TEST_BINARY", bin)
	code := pgtest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs the binary to completion in dir with a clean FLOWGATE_ environment.
func run(t *testing.T, dir, stdin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Getenv("FLOWGATE_TEST_BINARY"), args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLOWGATE_") {
			env = append(env, kv)
		}
	}
	return env
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serving is a running `flowgate serve`.
type serving struct {
	cmd    *exec.Cmd
	base   string
	stderr *syncbuf.Buffer
	done   chan error
}

func startServe(t *testing.T, dir string, env []string, args ...string) *serving {
	t.Helper()
	return startServeAt(t, dir, freeAddr(t), env, args...)
}

// startServeAt is startServe on an address chosen beforehand (the
// provider must know Flowgate's callback before Flowgate starts); stdout
// and stderr both go to the log buffer.
func startServeAt(t *testing.T, dir, addr string, env []string, args ...string) *serving {
	t.Helper()
	cmd := exec.Command(os.Getenv("FLOWGATE_TEST_BINARY"), append([]string{"serve", "--addr", addr}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	s := &serving{cmd: cmd, base: "http://" + addr, stderr: &syncbuf.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = s.stderr, s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-s.done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			t.Fatalf("serve exited early: %v\n%s", err, s.stderr.String())
		default:
		}
		if resp, err := http.Get(s.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("serve never became ready\n%s", s.stderr.String())
	return nil
}

func (s *serving) stop(t *testing.T) int {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30 s of SIGTERM")
	}
	return s.cmd.ProcessState.ExitCode()
}

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return doJSON(t, req)
}

// doJSON sends req and returns the status and the JSON object answered
// (nil when the body is not one).
func doJSON(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v
}

var adminPassword = regexp.MustCompile(`Created user "admin" with password: (\S+)`)

func TestServeEmbeddedDefault(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir, nil)

	m := adminPassword.FindStringSubmatch(s.stderr.String())
	if m == nil || len(m[1]) < 16 {
		t.Fatalf("no admin password printed on first start:\n%s", s.stderr.String())
	}
	if strings.Count(s.stderr.String(), m[1]) != 1 {
		t.Fatal("the admin password appears more than once in the output")
	}
	if _, err := os.Stat(filepath.Join(dir, "flowgate.db")); err != nil {
		t.Fatalf("default database not created in the working directory: %v", err)
	}
	if st, err := os.Stat(filepath.Join(dir, "flowgate.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("generated key file: %v (mode %v)", err, st)
	}
	if !strings.Contains(s.stderr.String(), "generated a secret key") {
		t.Fatal("no warning about the generated key")
	}

	code, body := getJSON(t, s.base+"/healthz")
	if code != 200 || body["status"] != "ok" {
		t.Fatalf("/healthz = %d %v", code, body)
	}
	code, body = getJSON(t, s.base+"/readyz")
	if code != 200 || body["checks"].(map[string]any)["database"] != "ok" {
		t.Fatalf("/readyz = %d %v", code, body)
	}
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`flowgate_http_requests_total{method="GET",route="GET /healthz",status="200"} 1`,
		`flowgate_http_request_duration_seconds_bucket{method="GET",route="GET /readyz"`,
		`flowgate_db_pool_open_connections{backend="sqlite"}`,
		`go_goroutines`,
	} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	resp, err = http.Get(s.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(resp.Header.Get("X-Request-Id")) < 16 {
		t.Fatal("no request id on the response")
	}
	if !strings.Contains(s.stderr.String(), `"request_id"`) {
		t.Fatal("request log line has no request id (or the log is not JSON when not on a terminal)")
	}

	if code := s.stop(t); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0\n%s", code, s.stderr.String())
	}

	// A second start finds the user and prints no password.
	s2 := startServe(t, dir, nil)
	if adminPassword.MatchString(s2.stderr.String()) {
		t.Fatal("second start printed an admin password again")
	}
	s2.stop(t)

	// The printed password is a real one.
	r := run(t, dir, "", nil, "user", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "admin") {
		t.Fatalf("user list: %+v", r)
	}
}

func TestServeDrainsInFlightOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir, nil)
	// A keep-alive connection that is idle must not hold the shutdown.
	client := &http.Client{}
	resp, err := client.Get(s.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	start := time.Now()
	if code := s.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("shutdown with an idle connection took %v", d)
	}
}

func TestBadInputExitsWithOneClearLine(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	broken := write("broken.yaml", "server:\n  addr: [\n")
	unknown := write("unknown.yaml", "server:\n  addr: \":0\"\n  colour: blue\n")
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"broken yaml", []string{"serve", "--config", broken}, "broken.yaml:"},
		{"unknown key", []string{"serve", "--config", unknown}, "colour"},
		{"unreachable postgres", []string{"serve", "--addr", "127.0.0.1:0", "--database", "postgres://flowgate:pw@127.0.0.1:1/flowgate?connect_timeout=2"}, "127.0.0.1:1"},
		{"port in use", []string{"serve", "--addr", busy.Addr().String()}, busy.Addr().String()},
		{"bad dsn", []string{"migrate", "--database", "mysql://x"}, "--database"},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		cases = append(cases, struct {
			name string
			args []string
			want string
		}{"unwritable database", []string{"serve", "--addr", "127.0.0.1:0", "--database", "sqlite:" + filepath.Join(ro, "f.db")}, filepath.Join(ro, "f.db")})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, dir, "", nil, tc.args...)
			if r.code == 0 {
				t.Fatalf("exit 0, want failure; stderr:\n%s", r.stderr)
			}
			last := lastLine(r.stderr)
			if !strings.HasPrefix(last, "flowgate: ") || !strings.Contains(last, tc.want) {
				t.Fatalf("last line %q does not name %q; stderr:\n%s", last, tc.want, r.stderr)
			}
			if strings.Contains(r.stderr, "pw@") {
				t.Fatal("the DSN password reached the output")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "flowgate.db")); err == nil {
		t.Error("a failed start left a database behind in the working directory")
	}
}

func TestUnwritableDatabaseDirectory(t *testing.T) {
	r := run(t, t.TempDir(), "", nil, "serve", "--addr", "127.0.0.1:0", "--database", "sqlite:/nonexistent-dir/sub/f.db")
	if r.code == 0 || !strings.Contains(lastLine(r.stderr), "/nonexistent-dir/sub") {
		t.Fatalf("want failure naming the path, got %d: %s", r.code, r.stderr)
	}
}

func lastLine(s string) string {
	var last string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	return last
}

func TestEnvironmentAndFlagsPrecedence(t *testing.T) {
	dir := t.TempDir()
	envDB := filepath.Join(dir, "env.db")
	flagDB := filepath.Join(dir, "flag.db")
	env := []string{"FLOWGATE_DATABASE=sqlite:" + envDB}
	if r := run(t, dir, "", env, "migrate"); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}
	if _, err := os.Stat(envDB); err != nil {
		t.Fatal("FLOWGATE_DATABASE not used")
	}
	if r := run(t, dir, "", env, "migrate", "--database", "sqlite:"+flagDB); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}
	if _, err := os.Stat(flagDB); err != nil {
		t.Fatal("--database did not beat FLOWGATE_DATABASE")
	}
}

func TestUserCommands(t *testing.T) {
	dir := t.TempDir()
	if r := run(t, dir, "", nil, "migrate"); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}
	if r := run(t, dir, "", nil, "user", "add", "alice"); r.code == 0 || !strings.Contains(r.stderr, "--password-stdin") {
		t.Fatalf("user add without a terminal and without --password-stdin: %+v", r)
	}
	if r := run(t, dir, "short\n", nil, "user", "add", "alice", "--password-stdin"); r.code == 0 || !strings.Contains(r.stderr, "password must be 8 to 1024 characters") {
		t.Fatalf("short password accepted: %+v", r)
	}
	// The CLI holds a user to the rules a declared user and the admin API
	// meet: not only the username.
	if r := run(t, dir, "s3cret-pass\n", nil, "user", "add", "bob", "--password-stdin", "--email", "bob at example"); r.code == 0 || !strings.Contains(r.stderr, `email: "bob at example" is not an email address`) {
		t.Fatalf("bad email accepted: %+v", r)
	}
	r := run(t, dir, "s3cret-pass\n", nil, "user", "add", "alice", "--password-stdin", "--email", "alice@example.com", "--role", "employee,approver")
	if r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	if r := run(t, dir, "s3cret-pass\n", nil, "user", "add", "alice", "--password-stdin"); r.code == 0 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("duplicate user add: %+v", r)
	}
	r = run(t, dir, "", nil, "user", "list")
	if r.code != 0 || !regexp.MustCompile(`alice\s+alice@example.com\s+employee,approver\s+active`).MatchString(r.stdout) {
		t.Fatalf("user list:\n%s", r.stdout)
	}
	if r := run(t, dir, "n3w-password\n", nil, "user", "passwd", "alice", "--password-stdin"); r.code != 0 {
		t.Fatalf("passwd: %+v", r)
	}
	if r := run(t, dir, "n3w-password\n", nil, "user", "passwd", "bob", "--password-stdin"); r.code == 0 || !strings.Contains(r.stderr, `no user "bob"`) {
		t.Fatalf("passwd unknown user: %+v", r)
	}
	if r := run(t, dir, "", nil, "user", "disable", "alice"); r.code != 0 {
		t.Fatalf("disable: %+v", r)
	}
	if r := run(t, dir, "", nil, "user", "list"); !regexp.MustCompile(`alice.*disabled`).MatchString(r.stdout) {
		t.Fatalf("user list after disable:\n%s", r.stdout)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "flowgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("s3cret-pass")) || bytes.Contains(raw, []byte("n3w-password")) {
		t.Fatal("a password is stored in plain text")
	}
}

func TestClientCommands(t *testing.T) {
	dir := t.TempDir()
	if r := run(t, dir, "", nil, "migrate"); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}
	r := run(t, dir, "", nil, "client", "add", "portal", "--name", "Expense portal",
		"--redirect-uri", "http://127.0.0.1:9000/callback", "--grant-type", "authorization_code,refresh_token,client_credentials")
	if r.code != 0 {
		t.Fatalf("client add: %+v", r)
	}
	m := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(r.stdout)
	if m == nil || len(m[1]) < 43 {
		t.Fatalf("no 256-bit secret shown:\n%s", r.stdout)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "flowgate.db"))
	if bytes.Contains(raw, []byte(m[1])) {
		t.Fatal("the client secret is stored in plain text")
	}
	if r := run(t, dir, "", nil, "client", "add", "portal", "--redirect-uri", "http://127.0.0.1:9000/cb"); r.code == 0 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("duplicate client: %+v", r)
	}
	if r := run(t, dir, "", nil, "client", "add", "spa", "--auth-method", "none", "--redirect-uri", "http://127.0.0.1:9000/cb"); r.code != 0 || strings.Contains(r.stdout, "client_secret") {
		t.Fatalf("public client: %+v", r)
	}
	if r := run(t, dir, "", nil, "client", "add", "bad", "--auth-method", "magic"); r.code == 0 || !strings.Contains(r.stderr, "magic") {
		t.Fatalf("bad auth method accepted: %+v", r)
	}
	if r := run(t, dir, "", nil, "client", "add", "nocb"); r.code == 0 || !strings.Contains(r.stderr, "redirect") {
		t.Fatalf("authorization_code client without redirect URI accepted: %+v", r)
	}
	r = run(t, dir, "", nil, "client", "list")
	if !regexp.MustCompile(`portal\s+Expense portal\s+client_secret_basic`).MatchString(r.stdout) || !strings.Contains(r.stdout, "spa") {
		t.Fatalf("client list:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, m[1]) {
		t.Fatal("client list shows the secret")
	}
	if r := run(t, dir, "", nil, "client", "remove", "portal"); r.code != 0 {
		t.Fatalf("remove: %+v", r)
	}
	if r := run(t, dir, "", nil, "client", "remove", "portal"); r.code == 0 || !strings.Contains(r.stderr, `no client "portal"`) {
		t.Fatalf("remove twice: %+v", r)
	}
}

func TestConfigDeclaresUsersAndClients(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "flowgate.yaml")
	text := `
users:
  - username: alice
    password: "alice-password-1"
    email: alice@example.com
    roles: [employee]
clients:
  - id: portal
    name: Portal
    secret: "portal-secret-that-is-long-enough"
    redirect_uris: ["http://127.0.0.1:9000/callback"]
    grant_types: [authorization_code]
    scopes: [openid]
`
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir, nil, "--config", cfg)
	if adminPassword.MatchString(s.stderr.String()) {
		t.Fatal("admin bootstrapped although the config declares users")
	}
	s.stop(t)
	r := run(t, dir, "", nil, "--config", cfg, "user", "list")
	if !regexp.MustCompile(`alice\s+alice@example.com\s+employee`).MatchString(r.stdout) {
		t.Fatalf("declared user missing:\n%s%s", r.stdout, r.stderr)
	}
	r = run(t, dir, "", nil, "--config", cfg, "client", "list")
	if !strings.Contains(r.stdout, "portal") {
		t.Fatalf("declared client missing:\n%s", r.stdout)
	}
	// Updated by name on the next start.
	if err := os.WriteFile(cfg, []byte(strings.Replace(text, "roles: [employee]", "roles: [employee, approver]", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	startServe(t, dir, nil, "--config", cfg).stop(t)
	r = run(t, dir, "", nil, "--config", cfg, "user", "list")
	if !strings.Contains(r.stdout, "employee,approver") {
		t.Fatalf("declared user not updated:\n%s", r.stdout)
	}
}

func TestWrongSecretKeyIsRefused(t *testing.T) {
	dir := t.TempDir()
	keyA := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	keyB := "6162636465666768696a6b6c6d6e6f707172737475767778797a303132333435"
	if r := run(t, dir, "", []string{"FLOWGATE_SECRET_KEY=" + keyA}, "migrate"); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}
	r := run(t, dir, "", []string{"FLOWGATE_SECRET_KEY=" + keyB}, "migrate")
	if r.code == 0 || !strings.Contains(r.stderr, "secret key does not open") {
		t.Fatalf("a different key was accepted: %+v", r)
	}
	if strings.Contains(r.stderr, keyB) || strings.Contains(r.stderr, keyA) {
		t.Fatal("key material in the error")
	}
	// Rotation: the new key first, the old one kept for reading.
	if r := run(t, dir, "", []string{"FLOWGATE_SECRET_KEY=" + keyB + "," + keyA}, "migrate"); r.code != 0 {
		t.Fatalf("rotated ring refused: %+v", r)
	}
}

func TestBackupWhileServing(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir, nil)
	dest := filepath.Join(dir, "copy.db")
	r := run(t, dir, "", nil, "backup", dest)
	if r.code != 0 {
		t.Fatalf("backup: %+v", r)
	}
	s.stop(t)
	// The copy is a working database with the same users and key.
	restored := t.TempDir()
	data, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, "flowgate.db"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(dir, "flowgate.key"))
	if err := os.WriteFile(filepath.Join(restored, "flowgate.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, restored, "", nil, "user", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "admin") {
		t.Fatalf("restored copy: %+v", r)
	}
}

func TestBackupRefusesPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	env := []string{"FLOWGATE_SECRET_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
	if r := run(t, t.TempDir(), "", env, "migrate", "--database", dsn); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}
	r := run(t, t.TempDir(), "", env, "backup", "x.db", "--database", dsn)
	if r.code == 0 || !strings.Contains(r.stderr, "pg_dump") {
		t.Fatalf("backup on PostgreSQL: %+v", r)
	}
}

func TestServeOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	env := []string{"FLOWGATE_SECRET_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "FLOWGATE_DATABASE=" + dsn}
	dir := t.TempDir()
	// Two servers on one database: one bootstraps the admin, both serve.
	a := startServe(t, dir, env)
	b := startServe(t, dir, env)
	created := 0
	for _, s := range []*serving{a, b} {
		if adminPassword.MatchString(s.stderr.String()) {
			created++
		}
		code, body := getJSON(t, s.base+"/readyz")
		if code != 200 {
			t.Fatalf("/readyz on postgres = %d %v", code, body)
		}
	}
	if created != 1 {
		t.Fatalf("admin created by %d servers, want 1", created)
	}
	if a.stop(t) != 0 || b.stop(t) != 0 {
		t.Fatal("non-zero exit after SIGTERM")
	}
}
