package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

func runConnectionsConformance(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"ConnectionRoundTrip", testConnectionRoundTrip},
		{"ConnectionUpsert", testConnectionUpsert},
		{"ConnectionUnknownServer", testConnectionUnknownServer},
		{"ConnectionListWithoutTokens", testConnectionList},
		{"ConnectionDelete", testConnectionDelete},
		{"ConnectionDiesWithServer", testConnectionDiesWithServer},
		{"ConnectionTokensSealed", testConnectionTokensSealed},
		{"ConnectionRefresh", testConnectionRefresh},
		{"ConnectionRefreshSerialised", testConnectionRefreshSerialised},
		{"ConnectionInstanceURL", testConnectionInstanceURL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func oauthServer(t *testing.T, s store.Store, name string) {
	t.Helper()
	if err := s.CreateOAuthServer(ctx(t), store.OAuthServer{Name: name, ClientID: "cid", TokenEndpoint: "https://" + name + ".example/token"}); err != nil {
		t.Fatal(err)
	}
}

func fullConnection(principal, server string) store.Connection {
	return store.Connection{
		Principal:    principal,
		Server:       server,
		AccessToken:  "AT-" + principal + "-" + server,
		RefreshToken: "RT-" + principal + "-" + server,
		TokenType:    "Bearer",
		Expiry:       ts(1_700_003_600),
		IssuedAt:     ts(1_700_000_000),
		Scopes:       []string{"User.Read", "offline_access"},
		InstanceURL:  "https://" + server + ".api.example",
		Status:       store.ConnectionOK,
		LastError:    "",
		Failures:     0,
		CreatedAt:    ts(1_700_000_000),
		UpdatedAt:    ts(1_700_000_001),
	}
}

func sameConnection(t *testing.T, got, want store.Connection) {
	t.Helper()
	if want.Status == "" {
		want.Status = store.ConnectionOK
	}
	if got.Principal != want.Principal || got.Server != want.Server || got.AccessToken != want.AccessToken ||
		got.RefreshToken != want.RefreshToken || got.TokenType != want.TokenType || !slices.Equal(got.Scopes, want.Scopes) ||
		got.InstanceURL != want.InstanceURL || got.Status != want.Status || got.LastError != want.LastError ||
		got.Failures != want.Failures {
		t.Errorf("connection:\n got %+v\nwant %+v", got, want)
	}
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{{"Expiry", got.Expiry, want.Expiry}, {"IssuedAt", got.IssuedAt, want.IssuedAt}, {"RetryAt", got.RetryAt, want.RetryAt}} {
		if f.want.IsZero() {
			if !f.got.IsZero() {
				t.Errorf("%s = %v, want zero", f.name, f.got)
			}
			continue
		}
		wantTime(t, f.name, f.got, f.want)
	}
}

func getConnection(t *testing.T, s store.Store, principal, server string) store.Connection {
	t.Helper()
	c, err := s.GetConnection(ctx(t), principal, server)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testConnectionRoundTrip(t *testing.T, s store.Store) {
	oauthServer(t, s, "graph")
	c := fullConnection("user:alice", "graph")
	c.Status = store.ConnectionReconnectRequired
	c.LastError = "invalid_grant: grant revoked"
	c.Failures = 3
	c.RetryAt = ts(1_700_000_900)
	if err := s.PutConnection(ctx(t), c); err != nil {
		t.Fatal(err)
	}
	got := getConnection(t, s, "user:alice", "graph")
	sameConnection(t, got, c)
	wantTime(t, "CreatedAt", got.CreatedAt, c.CreatedAt)
	wantTime(t, "UpdatedAt", got.UpdatedAt, c.UpdatedAt)

	// Zero values survive: no refresh token, unknown expiry, no scopes;
	// an empty status reads back as ok.
	bare := store.Connection{Principal: "entra:0f1e", Server: "graph", AccessToken: "only-an-access-token"}
	if err := s.PutConnection(ctx(t), bare); err != nil {
		t.Fatal(err)
	}
	got = getConnection(t, s, "entra:0f1e", "graph")
	sameConnection(t, got, bare)
	if got.Scopes != nil {
		t.Errorf("Scopes = %#v, want nil", got.Scopes)
	}
	if got.CreatedAt.IsZero() || got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want now in UTC", got.CreatedAt)
	}
	if _, err := s.GetConnection(ctx(t), "user:alice", "other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetConnection(other server) = %v, want ErrNotFound", err)
	}
	if _, err := s.GetConnection(ctx(t), "user:bob", "graph"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetConnection(other principal) = %v, want ErrNotFound", err)
	}
	if err := s.PutConnection(ctx(t), store.Connection{Principal: "p", Server: "graph", Status: "weird"}); err == nil {
		t.Error("PutConnection with an unknown status succeeded")
	}
}

func testConnectionUpsert(t *testing.T, s store.Store) {
	oauthServer(t, s, "graph")
	first := fullConnection("user:alice", "graph")
	if err := s.PutConnection(ctx(t), first); err != nil {
		t.Fatal(err)
	}
	// A new login replaces everything but CreatedAt, and clears a
	// reconnect_required state.
	second := store.Connection{Principal: "user:alice", Server: "graph", AccessToken: "AT2", RefreshToken: "RT2",
		TokenType: "Bearer", Expiry: ts(1_800_000_000), Scopes: []string{"Mail.Read"}, CreatedAt: ts(5), UpdatedAt: ts(1_800_000_000)}
	if err := s.PutConnection(ctx(t), second); err != nil {
		t.Fatalf("second PutConnection: %v", err)
	}
	got := getConnection(t, s, "user:alice", "graph")
	sameConnection(t, got, second)
	wantTime(t, "CreatedAt", got.CreatedAt, first.CreatedAt)
	wantTime(t, "UpdatedAt", got.UpdatedAt, second.UpdatedAt)
}

func testConnectionUnknownServer(t *testing.T, s store.Store) {
	err := s.PutConnection(ctx(t), fullConnection("user:alice", "nowhere"))
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("PutConnection(unknown server) = %v, want ErrNotFound", err)
	}
	if _, err := s.GetConnection(ctx(t), "user:alice", "nowhere"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused PutConnection left a row: %v", err)
	}
}

func testConnectionList(t *testing.T, s store.Store) {
	for _, name := range []string{"zeta", "graph", "Salesforce"} {
		oauthServer(t, s, name)
	}
	if cs, err := s.ListConnections(ctx(t), "user:alice"); err != nil || len(cs) != 0 {
		t.Fatalf("empty ListConnections = %v, %v", cs, err)
	}
	for _, name := range []string{"zeta", "graph", "Salesforce"} {
		if err := s.PutConnection(ctx(t), fullConnection("user:alice", name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutConnection(ctx(t), fullConnection("user:bob", "graph")); err != nil {
		t.Fatal(err)
	}
	cs, err := s.ListConnections(ctx(t), "user:alice")
	if err != nil {
		t.Fatal(err)
	}
	var servers []string
	for _, c := range cs {
		servers = append(servers, c.Server)
		if c.AccessToken != "" || c.RefreshToken != "" {
			t.Errorf("ListConnections returned tokens for %s", c.Server)
		}
		want := fullConnection("user:alice", c.Server)
		want.AccessToken, want.RefreshToken = "", ""
		sameConnection(t, c, want)
	}
	// Byte order: upper case first.
	if want := []string{"Salesforce", "graph", "zeta"}; !slices.Equal(servers, want) {
		t.Errorf("listed %v, want %v", servers, want)
	}
}

func testConnectionDelete(t *testing.T, s store.Store) {
	oauthServer(t, s, "graph")
	for _, p := range []string{"user:alice", "user:bob"} {
		if err := s.PutConnection(ctx(t), fullConnection(p, "graph")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteConnection(ctx(t), "user:alice", "graph"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetConnection(ctx(t), "user:alice", "graph"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetConnection after delete = %v, want ErrNotFound", err)
	}
	if err := s.DeleteConnection(ctx(t), "user:alice", "graph"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteConnection = %v, want ErrNotFound", err)
	}
	getConnection(t, s, "user:bob", "graph")
}

func testConnectionDiesWithServer(t *testing.T, s store.Store) {
	oauthServer(t, s, "graph")
	oauthServer(t, s, "other")
	for _, srv := range []string{"graph", "other"} {
		if err := s.PutConnection(ctx(t), fullConnection("user:alice", srv)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteOAuthServer(ctx(t), "graph"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetConnection(ctx(t), "user:alice", "graph"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("connection outlived its server: %v", err)
	}
	getConnection(t, s, "user:alice", "other")
}

// testConnectionTokensSealed reads the raw token columns: no token is
// stored in plaintext, and a sealed token copied to another row, or to the
// other token column of its own row, does not open.
func testConnectionTokensSealed(t *testing.T, s store.Store) {
	db, ok := s.(rawDB)
	if !ok {
		t.Skipf("%T gives no access to its database", s)
	}
	oauthServer(t, s, "graph")
	const access, refresh = "ACCESS-MARKER-7c2a91", "REFRESH-MARKER-55e0d3"
	c := fullConnection("user:alice", "graph")
	c.AccessToken, c.RefreshToken = access, refresh
	if err := s.PutConnection(ctx(t), c); err != nil {
		t.Fatal(err)
	}
	if err := s.PutConnection(ctx(t), fullConnection("user:bob", "graph")); err != nil {
		t.Fatal(err)
	}
	var a, r []byte
	if err := db.ReadDB().QueryRowContext(ctx(t), "SELECT access_token, refresh_token FROM connections WHERE principal = 'user:alice'").Scan(&a, &r); err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{a, r} {
		if len(b) <= len(access) || bytes.Contains(b, []byte(access)) || bytes.Contains(b, []byte(refresh)) {
			t.Errorf("token stored as %q: want ciphertext", b)
		}
	}
	// Nowhere else in the row either.
	var row string
	if err := db.ReadDB().QueryRowContext(ctx(t), "SELECT token_type || scopes || status || last_error FROM connections WHERE principal = 'user:alice'").Scan(&row); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains([]byte(row), []byte("MARKER")) {
		t.Errorf("a token leaked into the row: %q", row)
	}
	for _, stmt := range []string{
		// alice's access token to bob's row
		"UPDATE connections SET access_token = (SELECT access_token FROM connections WHERE principal = 'user:alice') WHERE principal = 'user:bob'",
		// alice's refresh token into her own access token column
		"UPDATE connections SET access_token = refresh_token WHERE principal = 'user:alice'",
	} {
		if _, err := db.WriteDB().ExecContext(ctx(t), stmt); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.GetConnection(ctx(t), "user:bob", "graph"); err == nil {
		t.Errorf("a token copied to another row opened: %q", got.AccessToken)
	}
	if got, err := s.GetConnection(ctx(t), "user:alice", "graph"); err == nil {
		t.Errorf("a refresh token copied to the access token column opened: %q", got.AccessToken)
	}
}

func testConnectionRefresh(t *testing.T, s store.Store) {
	oauthServer(t, s, "graph")
	_, err := s.RefreshConnection(ctx(t), "user:alice", "graph", func(store.Connection) (store.Connection, error) {
		t.Error("fn called for a connection that does not exist")
		return store.Connection{}, nil
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RefreshConnection(missing) = %v, want ErrNotFound", err)
	}
	orig := fullConnection("user:alice", "graph")
	if err := s.PutConnection(ctx(t), orig); err != nil {
		t.Fatal(err)
	}
	next := orig
	next.AccessToken, next.RefreshToken = "AT-rotated", "RT-rotated"
	next.Expiry, next.IssuedAt = ts(1_900_003_600), ts(1_900_000_000)
	next.Scopes = []string{"User.Read"}
	got, err := s.RefreshConnection(ctx(t), "user:alice", "graph", func(cur store.Connection) (store.Connection, error) {
		sameConnection(t, cur, orig)
		n := next
		n.Principal, n.Server = "someone:else", "elsewhere" // ignored: the lock's key wins
		return n, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sameConnection(t, got, next)
	stored := getConnection(t, s, "user:alice", "graph")
	sameConnection(t, stored, next)
	wantTime(t, "CreatedAt", stored.CreatedAt, orig.CreatedAt)
	if !stored.UpdatedAt.After(orig.UpdatedAt) {
		t.Errorf("UpdatedAt = %v, want now", stored.UpdatedAt)
	}
	// An error from fn writes nothing and comes back as is.
	boom := errors.New("provider said no")
	if _, err := s.RefreshConnection(ctx(t), "user:alice", "graph", func(cur store.Connection) (store.Connection, error) {
		cur.AccessToken = "must not be written"
		return cur, boom
	}); err != boom {
		t.Errorf("RefreshConnection = %v, want fn's error itself", err)
	}
	sameConnection(t, getConnection(t, s, "user:alice", "graph"), next)
	// Recording a failure (reconnect required) is a write like any other.
	if _, err := s.RefreshConnection(ctx(t), "user:alice", "graph", func(cur store.Connection) (store.Connection, error) {
		cur.Status, cur.LastError, cur.Failures = store.ConnectionReconnectRequired, "invalid_grant", 1
		return cur, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := getConnection(t, s, "user:alice", "graph"); got.Status != store.ConnectionReconnectRequired || got.RefreshToken != "RT-rotated" {
		t.Errorf("after recording a failure: %+v", got)
	}
}

// testConnectionRefreshSerialised runs many RefreshConnection calls at
// once: fn must never run twice at the same time for one row, and each
// must see what the previous one wrote (the refresh token it rotated).
func testConnectionRefreshSerialised(t *testing.T, s store.Store) {
	oauthServer(t, s, "graph")
	if err := s.PutConnection(ctx(t), store.Connection{Principal: "user:alice", Server: "graph", RefreshToken: "rt-0"}); err != nil {
		t.Fatal(err)
	}
	const n = 12
	var inFn, overlaps atomic.Int32
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := s.RefreshConnection(ctx(t), "user:alice", "graph", func(cur store.Connection) (store.Connection, error) {
				if inFn.Add(1) > 1 {
					overlaps.Add(1)
				}
				defer inFn.Add(-1)
				mu.Lock()
				if seen[cur.RefreshToken] {
					t.Errorf("refresh token %s seen twice", cur.RefreshToken)
				}
				seen[cur.RefreshToken] = true
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
				cur.Failures++
				cur.RefreshToken = fmt.Sprintf("rt-%d", cur.Failures)
				return cur, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if overlaps.Load() != 0 {
		t.Errorf("fn ran concurrently %d times for one row", overlaps.Load())
	}
	got := getConnection(t, s, "user:alice", "graph")
	if got.Failures != n || got.RefreshToken != fmt.Sprintf("rt-%d", n) {
		t.Errorf("after %d serialised refreshes: failures %d, refresh token %s", n, got.Failures, got.RefreshToken)
	}
}

// testConnectionInstanceURL: the provider's instance URL is kept with the
// connection by every write (a login, a refresh), read back by Get, by the
// lock's read and by List (it is not a secret), and cleared by a login
// whose answer had none.
func testConnectionInstanceURL(t *testing.T, s store.Store) {
	oauthServer(t, s, "salesforce")
	c := fullConnection("user:alice", "salesforce")
	c.InstanceURL = "https://acme.my.salesforce.com"
	if err := s.PutConnection(ctx(t), c); err != nil {
		t.Fatal(err)
	}
	if got := getConnection(t, s, "user:alice", "salesforce"); got.InstanceURL != c.InstanceURL {
		t.Errorf("GetConnection: InstanceURL = %q, want %q", got.InstanceURL, c.InstanceURL)
	}
	cs, err := s.ListConnections(ctx(t), "user:alice")
	if err != nil || len(cs) != 1 {
		t.Fatalf("ListConnections = %v, %v", cs, err)
	}
	if cs[0].InstanceURL != c.InstanceURL {
		t.Errorf("ListConnections: InstanceURL = %q, want %q", cs[0].InstanceURL, c.InstanceURL)
	}
	// A refresh sees it under the lock and may move it (an org moved to
	// another instance).
	moved := "https://acme2.my.salesforce.com"
	if _, err := s.RefreshConnection(ctx(t), "user:alice", "salesforce", func(cur store.Connection) (store.Connection, error) {
		if cur.InstanceURL != c.InstanceURL {
			t.Errorf("RefreshConnection's read: InstanceURL = %q, want %q", cur.InstanceURL, c.InstanceURL)
		}
		cur.AccessToken, cur.InstanceURL = "AT-refreshed", moved
		return cur, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := getConnection(t, s, "user:alice", "salesforce"); got.InstanceURL != moved || got.AccessToken != "AT-refreshed" {
		t.Errorf("after refresh: InstanceURL = %q, AccessToken = %q", got.InstanceURL, got.AccessToken)
	}
	// A new login without one replaces it with none.
	c.InstanceURL = ""
	if err := s.PutConnection(ctx(t), c); err != nil {
		t.Fatal(err)
	}
	if got := getConnection(t, s, "user:alice", "salesforce"); got.InstanceURL != "" {
		t.Errorf("after a login without it: InstanceURL = %q, want empty", got.InstanceURL)
	}
}
