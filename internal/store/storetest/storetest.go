// Package storetest is the conformance suite every store.Store backend
// must pass, and the benchmarks of its hot paths. A backend's test calls
// RunConformance with a function that opens a fresh, empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.RunConformance(t, func(t *testing.T) store.Store { … })
//	}
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// RunConformance runs every conformance test, each on a store of its own
// from newStore, which must also arrange for it to be closed.
func RunConformance(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Ping", testPing},
		{"UserRoundTrip", testUserRoundTrip},
		{"UserDefaultTimes", testUserDefaultTimes},
		{"UserConflict", testUserConflict},
		{"UserNotFound", testUserNotFound},
		{"UserUpdate", testUserUpdate},
		{"UserList", testUserList},
		{"UserListByteOrder", testUserListByteOrder},
		{"UserListBadCursor", testUserListBadCursor},
		{"UserCount", testUserCount},
		{"ClientRoundTrip", testClientRoundTrip},
		{"ClientConflict", testClientConflict},
		{"ClientNotFound", testClientNotFound},
		{"ClientUpdate", testClientUpdate},
		{"ClientDelete", testClientDelete},
		{"ClientList", testClientList},
		{"AuditBatchAndOrder", testAuditBatchAndOrder},
		{"AuditSameTimestampPaging", testAuditSameTimestampPaging},
		{"AuditFilters", testAuditFilters},
		{"AuditDefaultTime", testAuditDefaultTime},
		{"AuditBadCursor", testAuditBadCursor},
		{"SecretRoundTrip", testSecretRoundTrip},
		{"SecretOverwrite", testSecretOverwrite},
		{"SecretNotFound", testSecretNotFound},
		{"ConcurrentWriters", testConcurrentWriters},
		{"CanceledContext", testCanceledContext},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
	runAuthConformance(t, newStore)
	runSettingsConformance(t, newStore)
	runFlowsConformance(t, newStore)
	runConnectionsConformance(t, newStore)
	runConnectStatesConformance(t, newStore)
	runNamedSecretsConformance(t, newStore)
	runSignInConformance(t, newStore)
	runSecondFactorConformance(t, newStore)
	runPasskeyConformance(t, newStore)
	runDashboardConformance(t, newStore)
	runFederationConformance(t, newStore)
	runDataConformance(t, newStore)
	runSCIMConformance(t, newStore)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// ts builds a time in a non-UTC zone with sub-microsecond noise, so tests
// see both the conversion to UTC and the truncation to microseconds.
func ts(sec int64) time.Time {
	zone := time.FixedZone("UTC+5", 5*3600)
	return time.Unix(sec, 123456789).In(zone)
}

func wantTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if got.Location() != time.UTC {
		t.Errorf("%s: location %v, want UTC", what, got.Location())
	}
	if w := want.UTC().Truncate(time.Microsecond); !got.Equal(w) {
		t.Errorf("%s = %v, want %v", what, got, w)
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if b := s.Backend(); b != "sqlite" && b != "postgres" {
		t.Errorf("Backend() = %q, want sqlite or postgres", b)
	}
	if _, err := s.CountUsers(ctx(t)); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.MaxOpen <= 0 || st.Open <= 0 || st.Open > st.MaxOpen || st.InUse+st.Idle > st.Open || st.InUse != 0 {
		t.Errorf("Stats() = %+v: want 0 < Open <= MaxOpen, InUse+Idle <= Open and nothing in use", st)
	}
}

// --- users ---

func fullUser(name string) store.User {
	return store.User{
		Username:      name,
		PasswordHash:  "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		Email:         name + "@example.com",
		EmailVerified: true,
		Name:          "Alice Example",
		Roles:         []string{"employee", "approver"},
		Disabled:      true,
		CreatedAt:     ts(1_700_000_000),
		UpdatedAt:     ts(1_700_000_100),
	}
}

func sameUser(t *testing.T, got, want store.User) {
	t.Helper()
	if got.Username != want.Username || got.PasswordHash != want.PasswordHash || got.Email != want.Email ||
		got.EmailVerified != want.EmailVerified || got.Name != want.Name || got.Disabled != want.Disabled ||
		!slices.Equal(got.Roles, want.Roles) {
		t.Errorf("user:\n got %+v\nwant %+v", got, want)
	}
	wantTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	wantTime(t, "UpdatedAt", got.UpdatedAt, want.UpdatedAt)
}

func testUserRoundTrip(t *testing.T, s store.Store) {
	u := fullUser("alice")
	if err := s.CreateUser(ctx(t), u); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetUser(ctx(t), "alice")
	if err != nil {
		t.Fatal(err)
	}
	sameUser(t, got, u)

	// The zero values must survive too, not come back as defaults.
	bare := store.User{Username: "bob", CreatedAt: ts(1_600_000_000), UpdatedAt: ts(1_600_000_000)}
	if err := s.CreateUser(ctx(t), bare); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetUser(ctx(t), "bob")
	if err != nil {
		t.Fatal(err)
	}
	sameUser(t, got, bare)
	if got.Roles != nil {
		t.Errorf("Roles = %#v, want nil for a user without roles", got.Roles)
	}
	if _, err := s.GetUser(ctx(t), "Alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser(Alice) = %v, want ErrNotFound: usernames are case-sensitive", err)
	}
}

func testUserDefaultTimes(t *testing.T, s store.Store) {
	before := time.Now().Add(-time.Second)
	if err := s.CreateUser(ctx(t), store.User{Username: "carol"}); err != nil {
		t.Fatal(err)
	}
	after := time.Now().Add(time.Second)
	got, err := s.GetUser(ctx(t), "carol")
	if err != nil {
		t.Fatal(err)
	}
	if got.CreatedAt.Before(before) || got.CreatedAt.After(after) {
		t.Errorf("CreatedAt = %v, want between %v and %v", got.CreatedAt, before, after)
	}
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt location = %v, want UTC", got.CreatedAt.Location())
	}
	if !got.UpdatedAt.Equal(got.CreatedAt) {
		t.Errorf("UpdatedAt = %v, want CreatedAt %v", got.UpdatedAt, got.CreatedAt)
	}
}

func testUserConflict(t *testing.T, s store.Store) {
	u := fullUser("dave")
	if err := s.CreateUser(ctx(t), u); err != nil {
		t.Fatal(err)
	}
	dup := store.User{Username: "dave", Email: "other@example.com"}
	err := s.CreateUser(ctx(t), dup)
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second CreateUser = %v, want ErrConflict", err)
	}
	if !strings.Contains(err.Error(), `"dave"`) {
		t.Errorf("error %q does not name the user", err)
	}
	got, err := s.GetUser(ctx(t), "dave")
	if err != nil {
		t.Fatal(err)
	}
	sameUser(t, got, u)
	if n, _ := s.CountUsers(ctx(t)); n != 1 {
		t.Errorf("CountUsers = %d after a conflict, want 1", n)
	}
}

func testUserNotFound(t *testing.T, s store.Store) {
	_, err := s.GetUser(ctx(t), "nobody")
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetUser = %v, want ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), `"nobody"`) {
		t.Errorf("error %q does not name the user", err)
	}
	err = s.UpdateUser(ctx(t), store.User{Username: "nobody"})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateUser = %v, want ErrNotFound", err)
	}
	if n, _ := s.CountUsers(ctx(t)); n != 0 {
		t.Errorf("UpdateUser of a missing user created one: CountUsers = %d", n)
	}
}

func testUserUpdate(t *testing.T, s store.Store) {
	orig := fullUser("erin")
	if err := s.CreateUser(ctx(t), orig); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx(t), fullUser("frank")); err != nil {
		t.Fatal(err)
	}
	upd := store.User{
		Username:      "erin",
		PasswordHash:  "",
		Email:         "erin@new.example",
		EmailVerified: false,
		Name:          "Erin Renamed",
		Roles:         []string{"admin"},
		Disabled:      false,
		CreatedAt:     ts(1), // must be ignored
		UpdatedAt:     ts(1_800_000_000),
	}
	if err := s.UpdateUser(ctx(t), upd); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetUser(ctx(t), "erin")
	if err != nil {
		t.Fatal(err)
	}
	want := upd
	want.CreatedAt = orig.CreatedAt
	sameUser(t, got, want)

	// Only the named user changed.
	other, err := s.GetUser(ctx(t), "frank")
	if err != nil {
		t.Fatal(err)
	}
	sameUser(t, other, fullUser("frank"))

	// A zero UpdatedAt means now; clearing roles must stick.
	before := time.Now().Add(-time.Second)
	upd.UpdatedAt, upd.Roles = time.Time{}, nil
	if err := s.UpdateUser(ctx(t), upd); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetUser(ctx(t), "erin")
	if err != nil {
		t.Fatal(err)
	}
	if got.UpdatedAt.Before(before) {
		t.Errorf("UpdatedAt = %v, want about now", got.UpdatedAt)
	}
	if len(got.Roles) != 0 {
		t.Errorf("Roles = %v after clearing", got.Roles)
	}
}

// pageAll walks every page with the given limit and checks the paging
// contract: pages full but the last, an empty cursor only on the last.
func pageAll[T any](t *testing.T, limit int, list func(p store.Page) ([]T, string, error)) (all []T, pages int) {
	t.Helper()
	cursor := ""
	for {
		items, next, err := list(store.Page{Limit: limit, Cursor: cursor})
		if err != nil {
			t.Fatalf("page %d: %v", pages+1, err)
		}
		pages++
		all = append(all, items...)
		if next == "" {
			if limit > 0 && len(items) > limit {
				t.Fatalf("last page has %d items, limit %d", len(items), limit)
			}
			return all, pages
		}
		if len(items) != limit {
			t.Fatalf("page %d has %d items and a cursor; want exactly %d", pages, len(items), limit)
		}
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
		cursor = next
	}
}

func testUserList(t *testing.T, s store.Store) {
	if users, next, err := s.ListUsers(ctx(t), store.Page{}); err != nil || len(users) != 0 || next != "" {
		t.Fatalf("empty ListUsers = %v, %q, %v", users, next, err)
	}
	const n = 23
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("user%02d", i))
	}
	shuffled := slices.Clone(names)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, name := range shuffled {
		u := fullUser(name)
		if err := s.CreateUser(ctx(t), u); err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []int{1, 5, 10, 23, 0} {
		all, pages := pageAll(t, limit, func(p store.Page) ([]store.User, string, error) {
			return s.ListUsers(ctx(t), p)
		})
		var got []string
		for _, u := range all {
			got = append(got, u.Username)
		}
		if !slices.Equal(got, names) {
			t.Errorf("limit %d: listed %v, want %v", limit, got, names)
		}
		wantPages := 1
		if limit > 0 {
			wantPages = (n + limit - 1) / limit
		}
		if pages != wantPages {
			t.Errorf("limit %d: %d pages, want %d", limit, pages, wantPages)
		}
		if len(all) > 0 {
			sameUser(t, all[0], fullUser(names[0]))
		}
	}
	// A limit above MaxLimit is clamped, not an error.
	if users, _, err := s.ListUsers(ctx(t), store.Page{Limit: store.MaxLimit + 100}); err != nil || len(users) != n {
		t.Errorf("ListUsers(huge limit) = %d users, %v", len(users), err)
	}
}

func testUserListByteOrder(t *testing.T, s store.Store) {
	names := []string{"é", "Zed", "bob", "Bob", "alice", "_x", "a b", "ä"}
	for _, name := range names {
		if err := s.CreateUser(ctx(t), store.User{Username: name}); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(names) // Go compares strings byte-wise
	all, _ := pageAll(t, 3, func(p store.Page) ([]store.User, string, error) { return s.ListUsers(ctx(t), p) })
	var got []string
	for _, u := range all {
		got = append(got, u.Username)
	}
	if !slices.Equal(got, names) {
		t.Errorf("listed %q, want byte order %q", got, names)
	}
}

func testUserListBadCursor(t *testing.T, s store.Store) {
	for _, c := range []string{"!!!not base64!!!", "%%%"} {
		if _, _, err := s.ListUsers(ctx(t), store.Page{Cursor: c}); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("ListUsers(cursor %q) = %v, want ErrInvalidCursor", c, err)
		}
	}
}

func testUserCount(t *testing.T, s store.Store) {
	if n, err := s.CountUsers(ctx(t)); err != nil || n != 0 {
		t.Fatalf("CountUsers on empty store = %d, %v", n, err)
	}
	for i := range 7 {
		u := store.User{Username: fmt.Sprintf("u%d", i), Disabled: i%2 == 0}
		if err := s.CreateUser(ctx(t), u); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.CountUsers(ctx(t)); err != nil || n != 7 {
		t.Fatalf("CountUsers = %d, %v; want 7, disabled users included", n, err)
	}
}

// --- clients ---

func fullClient(id string) store.Client {
	return store.Client{
		ID:                      id,
		Name:                    "Expense portal",
		SecretHash:              "hmac-sha256:abcdef",
		RedirectURIs:            []string{"http://127.0.0.1:9000/callback", "https://portal.example/cb?x=1&y=\"2\""},
		PostLogoutRedirectURIs:  []string{"https://portal.example/bye"},
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		Scopes:                  []string{"openid", "profile", "workflows.read"},
		TokenEndpointAuthMethod: "client_secret_basic",
		JWKS:                    `{"keys":[]}`,
		JWKSURI:                 "https://portal.example/jwks",
		PublicKeyPEM:            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
		Consent:                 "admin",
		DPoP:                    true,
		Roles:                   []string{"robot"},
		CreatedAt:               ts(1_700_000_000),
		UpdatedAt:               ts(1_700_000_500),
	}
}

func sameClient(t *testing.T, got, want store.Client) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.SecretHash != want.SecretHash ||
		!slices.Equal(got.RedirectURIs, want.RedirectURIs) ||
		!slices.Equal(got.PostLogoutRedirectURIs, want.PostLogoutRedirectURIs) ||
		!slices.Equal(got.GrantTypes, want.GrantTypes) || !slices.Equal(got.Scopes, want.Scopes) ||
		got.TokenEndpointAuthMethod != want.TokenEndpointAuthMethod || got.JWKS != want.JWKS ||
		got.JWKSURI != want.JWKSURI || got.PublicKeyPEM != want.PublicKeyPEM || got.Consent != want.Consent ||
		got.DPoP != want.DPoP || !slices.Equal(got.Roles, want.Roles) {
		t.Errorf("client:\n got %+v\nwant %+v", got, want)
	}
	wantTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	wantTime(t, "UpdatedAt", got.UpdatedAt, want.UpdatedAt)
}

func testClientRoundTrip(t *testing.T, s store.Store) {
	c := fullClient("portal")
	if err := s.CreateClient(ctx(t), c); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetClient(ctx(t), "portal")
	if err != nil {
		t.Fatal(err)
	}
	sameClient(t, got, c)

	public := store.Client{ID: "spa", TokenEndpointAuthMethod: "none", CreatedAt: ts(5), UpdatedAt: ts(6)}
	if err := s.CreateClient(ctx(t), public); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetClient(ctx(t), "spa")
	if err != nil {
		t.Fatal(err)
	}
	sameClient(t, got, public)
	if got.RedirectURIs != nil || got.Scopes != nil || got.DPoP {
		t.Errorf("empty client came back with %+v", got)
	}
}

func testClientConflict(t *testing.T, s store.Store) {
	c := fullClient("portal")
	if err := s.CreateClient(ctx(t), c); err != nil {
		t.Fatal(err)
	}
	err := s.CreateClient(ctx(t), store.Client{ID: "portal", Name: "impostor"})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second CreateClient = %v, want ErrConflict", err)
	}
	got, err := s.GetClient(ctx(t), "portal")
	if err != nil {
		t.Fatal(err)
	}
	sameClient(t, got, c)
}

func testClientNotFound(t *testing.T, s store.Store) {
	if _, err := s.GetClient(ctx(t), "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetClient = %v, want ErrNotFound", err)
	} else if !strings.Contains(err.Error(), `"ghost"`) {
		t.Errorf("error %q does not name the client", err)
	}
	if err := s.UpdateClient(ctx(t), store.Client{ID: "ghost"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateClient = %v, want ErrNotFound", err)
	}
	if err := s.DeleteClient(ctx(t), "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteClient = %v, want ErrNotFound", err)
	}
}

func testClientUpdate(t *testing.T, s store.Store) {
	orig := fullClient("portal")
	if err := s.CreateClient(ctx(t), orig); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx(t), fullClient("other")); err != nil {
		t.Fatal(err)
	}
	upd := store.Client{
		ID:                      "portal",
		Name:                    "Renamed",
		RedirectURIs:            []string{"https://new.example/cb"},
		GrantTypes:              []string{"client_credentials"},
		Scopes:                  nil,
		TokenEndpointAuthMethod: "private_key_jwt",
		JWKSURI:                 "https://new.example/jwks",
		Consent:                 "user",
		DPoP:                    false,
		CreatedAt:               ts(2), // ignored
		UpdatedAt:               ts(1_900_000_000),
	}
	if err := s.UpdateClient(ctx(t), upd); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetClient(ctx(t), "portal")
	if err != nil {
		t.Fatal(err)
	}
	want := upd
	want.CreatedAt = orig.CreatedAt
	sameClient(t, got, want)
	other, err := s.GetClient(ctx(t), "other")
	if err != nil {
		t.Fatal(err)
	}
	sameClient(t, other, fullClient("other"))
}

func testClientDelete(t *testing.T, s store.Store) {
	for _, id := range []string{"a", "b"} {
		if err := s.CreateClient(ctx(t), fullClient(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteClient(ctx(t), "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetClient(ctx(t), "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetClient after delete = %v, want ErrNotFound", err)
	}
	if err := s.DeleteClient(ctx(t), "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteClient = %v, want ErrNotFound", err)
	}
	if _, err := s.GetClient(ctx(t), "b"); err != nil {
		t.Errorf("deleting a removed b too: %v", err)
	}
	// The id is free again.
	if err := s.CreateClient(ctx(t), store.Client{ID: "a"}); err != nil {
		t.Errorf("re-create after delete: %v", err)
	}
}

func testClientList(t *testing.T, s store.Store) {
	if cs, next, err := s.ListClients(ctx(t), store.Page{}); err != nil || len(cs) != 0 || next != "" {
		t.Fatalf("empty ListClients = %v, %q, %v", cs, next, err)
	}
	var ids []string
	for i := range 17 {
		ids = append(ids, fmt.Sprintf("client-%03d", i*7))
	}
	for _, i := range rand.Perm(len(ids)) {
		if err := s.CreateClient(ctx(t), fullClient(ids[i])); err != nil {
			t.Fatal(err)
		}
	}
	// Deleting one in the middle leaves no gap and no ghost.
	if err := s.DeleteClient(ctx(t), ids[8]); err != nil {
		t.Fatal(err)
	}
	ids = slices.Delete(ids, 8, 9)
	for _, limit := range []int{1, 4, 16, 100} {
		all, _ := pageAll(t, limit, func(p store.Page) ([]store.Client, string, error) {
			return s.ListClients(ctx(t), p)
		})
		var got []string
		for _, c := range all {
			got = append(got, c.ID)
		}
		if !slices.Equal(got, ids) {
			t.Errorf("limit %d: listed %v, want %v", limit, got, ids)
		}
		sameClient(t, all[0], fullClient(ids[0]))
	}
	if _, _, err := s.ListClients(ctx(t), store.Page{Cursor: "***"}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("bad cursor: %v, want ErrInvalidCursor", err)
	}
}

// --- audit ---

func listAllAudit(t *testing.T, s store.Store, f store.AuditFilter) []store.AuditEvent {
	t.Helper()
	all, _ := pageAll(t, f.Page.Limit, func(p store.Page) ([]store.AuditEvent, string, error) {
		f.Page = p
		return s.ListAudit(ctx(t), f)
	})
	return all
}

func testAuditBatchAndOrder(t *testing.T, s store.Store) {
	if evs, next, err := s.ListAudit(ctx(t), store.AuditFilter{}); err != nil || len(evs) != 0 || next != "" {
		t.Fatalf("empty ListAudit = %v, %q, %v", evs, next, err)
	}
	if err := s.AppendAudit(ctx(t)); err != nil {
		t.Fatalf("AppendAudit() with no events: %v", err)
	}
	// 255 crosses any sensible multi-row chunk size, with a remainder, and
	// is the sum of each power of two up to 128 once.
	const n = 255
	base := ts(1_700_000_000)
	events := make([]store.AuditEvent, n)
	for i := range events {
		events[i] = store.AuditEvent{
			Time:       base.Add(time.Duration(i) * time.Second),
			Event:      "login",
			User:       fmt.Sprintf("user%d", i%5),
			Client:     "portal",
			RemoteAddr: "192.0.2.1:1234",
			UserAgent:  "Mozilla/5.0 \"quoted\"",
			Outcome:    []string{"success", "failure"}[i%2],
			Detail:     fmt.Sprintf("event %d", i),
		}
	}
	if err := s.AppendAudit(ctx(t), events...); err != nil {
		t.Fatal(err)
	}
	all := listAllAudit(t, s, store.AuditFilter{Page: store.Page{Limit: 60}})
	if len(all) != n {
		t.Fatalf("listed %d events, want %d", len(all), n)
	}
	seen := map[int64]bool{}
	for i, e := range all {
		want := events[n-1-i] // newest first
		if e.Event != want.Event || e.User != want.User || e.Client != want.Client || e.RemoteAddr != want.RemoteAddr ||
			e.UserAgent != want.UserAgent || e.Outcome != want.Outcome || e.Detail != want.Detail {
			t.Fatalf("event %d:\n got %+v\nwant %+v", i, e, want)
		}
		wantTime(t, fmt.Sprintf("event %d Time", i), e.Time, want.Time)
		if seen[e.ID] {
			t.Fatalf("duplicate id %d", e.ID)
		}
		seen[e.ID] = true
		if i > 0 && e.ID >= all[i-1].ID {
			t.Fatalf("ids not increasing in insertion order: %d listed after %d", e.ID, all[i-1].ID)
		}
	}
	// A later append gets larger ids.
	if err := s.AppendAudit(ctx(t), store.AuditEvent{Time: base.Add(time.Hour), Event: "logout"}); err != nil {
		t.Fatal(err)
	}
	first, _, err := s.ListAudit(ctx(t), store.AuditFilter{Page: store.Page{Limit: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 1 || first[0].Event != "logout" || first[0].ID <= all[0].ID {
		t.Errorf("newest event = %+v, want the logout with an id above %d", first, all[0].ID)
	}
}

func testAuditSameTimestampPaging(t *testing.T, s store.Store) {
	// Group commit writes many events in the same microsecond; paging
	// must not skip or repeat any of them.
	at := ts(1_700_000_000)
	var events []store.AuditEvent
	for i := range 31 {
		events = append(events, store.AuditEvent{Time: at, Event: "token", Detail: fmt.Sprint(i)})
	}
	if err := s.AppendAudit(ctx(t), events...); err != nil {
		t.Fatal(err)
	}
	// And a few written one by one, same time again.
	for i := 31; i < 35; i++ {
		if err := s.AppendAudit(ctx(t), store.AuditEvent{Time: at, Event: "token", Detail: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	all := listAllAudit(t, s, store.AuditFilter{Page: store.Page{Limit: 7}})
	if len(all) != 35 {
		t.Fatalf("listed %d, want 35", len(all))
	}
	for i, e := range all {
		if want := fmt.Sprint(34 - i); e.Detail != want {
			t.Fatalf("position %d: detail %s, want %s (newest first, by id within one timestamp)", i, e.Detail, want)
		}
	}
}

func testAuditFilters(t *testing.T, s store.Store) {
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var events []store.AuditEvent
	for i := range 40 {
		events = append(events, store.AuditEvent{
			Time:    base.Add(time.Duration(i) * time.Minute),
			Event:   []string{"login", "logout", "token"}[i%3],
			User:    []string{"alice", "bob"}[i%2],
			Outcome: "success",
			Detail:  fmt.Sprint(i),
		})
	}
	if err := s.AppendAudit(ctx(t), events...); err != nil {
		t.Fatal(err)
	}
	match := func(f store.AuditFilter) []string {
		var want []string
		for i := len(events) - 1; i >= 0; i-- {
			e := events[i]
			if (!f.Since.IsZero() && e.Time.Before(f.Since)) || (!f.Until.IsZero() && !e.Time.Before(f.Until)) ||
				(f.User != "" && e.User != f.User) || (f.Event != "" && e.Event != f.Event) {
				continue
			}
			want = append(want, e.Detail)
		}
		return want
	}
	zone := time.FixedZone("UTC-7", -7*3600)
	for _, f := range []store.AuditFilter{
		{Since: base.Add(10 * time.Minute)},
		{Until: base.Add(10 * time.Minute)},
		// Exact boundaries, given in another zone: Since inclusive,
		// Until exclusive.
		{Since: base.Add(5 * time.Minute).In(zone), Until: base.Add(15 * time.Minute).In(zone)},
		{User: "alice"},
		{Event: "token"},
		{User: "bob", Event: "login", Since: base.Add(3 * time.Minute)},
		{User: "carol"},
		{Since: base.Add(time.Hour)},
	} {
		for _, limit := range []int{3, 0} {
			f.Page.Limit = limit
			var got []string
			for _, e := range listAllAudit(t, s, f) {
				got = append(got, e.Detail)
			}
			if want := match(f); !slices.Equal(got, want) {
				t.Errorf("filter %+v: got %v, want %v", f, got, want)
			}
		}
	}
	// Sanity of the oracle itself: the boundaries are inclusive/exclusive.
	if got := match(store.AuditFilter{Since: base.Add(5 * time.Minute), Until: base.Add(15 * time.Minute)}); len(got) != 10 || got[0] != "14" || got[9] != "5" {
		t.Fatalf("oracle: %v", got)
	}
}

func testAuditDefaultTime(t *testing.T, s store.Store) {
	before := time.Now().Add(-time.Second)
	if err := s.AppendAudit(ctx(t), store.AuditEvent{Event: "login"}, store.AuditEvent{Event: "logout"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx(t), store.AuditEvent{Event: "single"}); err != nil {
		t.Fatal(err)
	}
	after := time.Now().Add(time.Second)
	all := listAllAudit(t, s, store.AuditFilter{})
	if len(all) != 3 {
		t.Fatalf("listed %d, want 3", len(all))
	}
	for _, e := range all {
		if e.Time.Before(before) || e.Time.After(after) || e.Time.Location() != time.UTC {
			t.Errorf("%s: Time %v, want now in UTC", e.Event, e.Time)
		}
	}
	if all[0].Event != "single" {
		t.Errorf("newest is %q, want single", all[0].Event)
	}
}

func testAuditBadCursor(t *testing.T, s store.Store) {
	for _, c := range []string{"###", store.EncodeCursor("no-colon"), store.EncodeCursor("1:x"), store.EncodeCursor("x:1")} {
		_, _, err := s.ListAudit(ctx(t), store.AuditFilter{Page: store.Page{Cursor: c}})
		if !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("cursor %q: %v, want ErrInvalidCursor", c, err)
		}
	}
}

// --- secrets ---

func testSecretRoundTrip(t *testing.T, s store.Store) {
	values := map[string][]byte{
		"signing-key":   []byte("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"),
		"binary":        {0, 1, 2, 0xff, 0, 0xfe},
		"empty":         {},
		"name with ✓ ü": bytes.Repeat([]byte("x"), 64<<10),
	}
	for name, v := range values {
		if err := s.PutSecret(ctx(t), name, v); err != nil {
			t.Fatalf("PutSecret(%q): %v", name, err)
		}
	}
	for name, want := range values {
		got, err := s.GetSecret(ctx(t), name)
		if err != nil {
			t.Fatalf("GetSecret(%q): %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("GetSecret(%q) = %d bytes %.20q, want %d bytes %.20q", name, len(got), got, len(want), want)
		}
	}
}

func testSecretOverwrite(t *testing.T, s store.Store) {
	if err := s.PutSecret(ctx(t), "k", []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSecret(ctx(t), "other", []byte("untouched")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSecret(ctx(t), "k", []byte("second, longer value")); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	if got, err := s.GetSecret(ctx(t), "k"); err != nil || string(got) != "second, longer value" {
		t.Errorf("after overwrite GetSecret = %q, %v", got, err)
	}
	if got, err := s.GetSecret(ctx(t), "other"); err != nil || string(got) != "untouched" {
		t.Errorf("neighbour GetSecret = %q, %v", got, err)
	}
}

func testSecretNotFound(t *testing.T, s store.Store) {
	_, err := s.GetSecret(ctx(t), "missing")
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetSecret = %v, want ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), `"missing"`) {
		t.Errorf("error %q does not name the secret", err)
	}
}

// --- the store as a whole ---

func testConcurrentWriters(t *testing.T, s store.Store) {
	const workers, each = 8, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				name := fmt.Sprintf("w%d-u%d", w, i)
				if err := s.CreateUser(ctx(t), store.User{Username: name}); err != nil {
					errs <- err
					return
				}
				if err := s.AppendAudit(ctx(t), store.AuditEvent{Event: "create", User: name},
					store.AuditEvent{Event: "login", User: name}); err != nil {
					errs <- err
					return
				}
				if _, err := s.GetUser(ctx(t), name); err != nil {
					errs <- err
					return
				}
				if err := s.PutSecret(ctx(t), fmt.Sprintf("w%d", w), []byte(name)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, err := s.CountUsers(ctx(t)); err != nil || n != workers*each {
		t.Errorf("CountUsers = %d, %v; want %d", n, err, workers*each)
	}
	if all := listAllAudit(t, s, store.AuditFilter{Page: store.Page{Limit: store.MaxLimit}}); len(all) != 2*workers*each {
		t.Errorf("%d audit events, want %d", len(all), 2*workers*each)
	}
	for w := range workers {
		want := fmt.Sprintf("w%d-u%d", w, each-1)
		if got, err := s.GetSecret(ctx(t), fmt.Sprintf("w%d", w)); err != nil || string(got) != want {
			t.Errorf("secret w%d = %q, %v; want %q", w, got, err, want)
		}
	}
}

func testCanceledContext(t *testing.T, s store.Store) {
	c, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.GetUser(c, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("GetUser = %v, want context.Canceled", err)
	}
	if err := s.CreateUser(c, store.User{Username: "x"}); err == nil {
		t.Error("CreateUser with a canceled context succeeded")
	}
	if err := s.AppendAudit(c, store.AuditEvent{Event: "a"}, store.AuditEvent{Event: "b"}); err == nil {
		t.Error("AppendAudit with a canceled context succeeded")
	}
	if _, err := s.GetUser(ctx(t), "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a canceled CreateUser left a user behind: %v", err)
	}
	if evs, _, err := s.ListAudit(ctx(t), store.AuditFilter{}); err != nil || len(evs) != 0 {
		t.Errorf("a canceled AppendAudit left %d events, %v", len(evs), err)
	}
}

func testClose(t *testing.T, s store.Store) {
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(ctx(t)); err == nil {
		t.Error("Ping after Close succeeded")
	}
}
