package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/flowgate/flowgate/internal/store"
)

// runAuthConformance runs the authorization server's conformance tests,
// each on a store of its own.
func runAuthConformance(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"SigningKeys", testSigningKeys},
		{"SigningKeyFirstStartRace", testSigningKeyRace},
		{"AuthRequest", testAuthRequest},
		{"AuthCodeSingleUse", testAuthCodeSingleUse},
		{"AuthCodeConcurrentUse", testAuthCodeConcurrent},
		{"RefreshRotation", testRefreshRotation},
		{"RefreshRevokeUser", testRefreshRevokeUser},
		{"AccessDenylist", testAccessDenylist},
		{"Sessions", testSessions},
		{"Consents", testConsents},
		{"AssertionJTI", testAssertionJTI},
		{"DPoPJTI", testDPoPJTI},
		{"DPoPJTIConcurrent", testDPoPJTIConcurrent},
		{"ProtocolFields", testProtocolFields},
		{"PruneAuth", testPruneAuth},
	}
	for _, tc := range tests {
		t.Run("Auth/"+tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func testSigningKeys(t *testing.T, s store.Store) {
	c := ctx(t)
	k1 := store.SigningKey{ID: "k1", Purpose: "access", Alg: "ES256", Private: []byte("private-1"), PublicJWK: `{"kid":"k1"}`, CreatedAt: ts(1000)}
	if err := s.AddSigningKey(c, k1); err != nil {
		t.Fatal(err)
	}
	k2 := k1
	k2.ID = "k2"
	if err := s.AddSigningKey(c, k2); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second active key of one purpose: %v, want ErrConflict", err)
	}
	idk := store.SigningKey{ID: "i1", Purpose: "id", Alg: "RS256", Private: []byte("private-i"), PublicJWK: `{"kid":"i1"}`, CreatedAt: ts(1001)}
	if err := s.AddSigningKey(c, idk); err != nil {
		t.Fatal(err)
	}
	k3 := store.SigningKey{ID: "k3", Purpose: "access", Alg: "ES256", Private: []byte("private-3"), PublicJWK: `{"kid":"k3"}`, CreatedAt: ts(2000)}
	if err := s.RotateSigningKey(c, k3, ts(5000)); err != nil {
		t.Fatal(err)
	}
	keys, err := s.ListSigningKeys(c, ts(3000))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	if !slices.Equal(ids, []string{"k3", "i1", "k1"}) {
		t.Fatalf("keys = %v, want newest first [k3 i1 k1]", ids)
	}
	if string(keys[0].Private) != "private-3" || !keys[0].RetireAfter.IsZero() || keys[0].Alg != "ES256" || keys[0].PublicJWK != `{"kid":"k3"}` {
		t.Errorf("active key = %+v", keys[0])
	}
	wantTime(t, "retire_after", keys[2].RetireAfter, ts(5000))
	wantTime(t, "created_at", keys[2].CreatedAt, ts(1000))
	keys, err = s.ListSigningKeys(c, ts(6000))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("after retirement %d keys, want 2", len(keys))
	}
}

func testSigningKeyRace(t *testing.T, s store.Store) {
	c := ctx(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			errs[i] = s.AddSigningKey(c, store.SigningKey{ID: string(rune('a' + i)), Purpose: "access", Alg: "ES256", Private: []byte("x"), PublicJWK: "{}"})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent first keys succeeded, want 1", ok)
	}
}

func testAuthRequest(t *testing.T, s store.Store) {
	c := ctx(t)
	r := store.AuthRequest{
		ID: "req1", ClientID: "portal", RedirectURI: "https://rp/cb", Scopes: []string{"openid", "profile"},
		State: "st", Nonce: "n", ResponseType: "code", CodeChallenge: "cc", CodeChallengeMethod: "S256",
		Prompt: []string{"login"}, MaxAge: 300, LoginHint: "alice", CreatedAt: ts(1000), ExpiresAt: ts(2000),
	}
	if err := s.CreateAuthRequest(c, r); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAuthRequest(c, "req1", ts(1500))
	if err != nil {
		t.Fatal(err)
	}
	if got.ClientID != r.ClientID || !slices.Equal(got.Scopes, r.Scopes) || got.State != "st" || got.Nonce != "n" ||
		got.CodeChallenge != "cc" || got.CodeChallengeMethod != "S256" || !slices.Equal(got.Prompt, r.Prompt) ||
		got.MaxAge != 300 || got.LoginHint != "alice" || got.Done || got.User != "" || !got.AuthTime.IsZero() {
		t.Fatalf("got %+v", got)
	}
	wantTime(t, "expires_at", got.ExpiresAt, ts(2000))
	if _, err := s.GetAuthRequest(c, "req1", ts(2000)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired request: %v", err)
	}
	if err := s.CompleteAuthRequest(c, "req1", "alice", ts(1600), []string{"pwd"}); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetAuthRequest(c, "req1", ts(1700))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Done || got.User != "alice" || !slices.Equal(got.AMR, []string{"pwd"}) {
		t.Fatalf("completed = %+v", got)
	}
	wantTime(t, "auth_time", got.AuthTime, ts(1600))
	if err := s.CompleteAuthRequest(c, "nope", "alice", ts(1600), nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("complete missing: %v", err)
	}
	if err := s.DeleteAuthRequest(c, "req1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAuthRequest(c, "req1", ts(1500)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted request: %v", err)
	}
}

func sampleCode(hash string) store.AuthCode {
	return store.AuthCode{
		Hash: hash, ClientID: "portal", RedirectURI: "https://rp/cb", User: "alice", Scopes: []string{"openid"},
		Nonce: "n", CodeChallenge: "cc", CodeChallengeMethod: "S256", AuthTime: ts(900), AMR: []string{"pwd"},
		AccessJTI: "jti-" + hash, FamilyID: "fam-" + hash, CreatedAt: ts(1000), ExpiresAt: ts(1060),
	}
}

func testAuthCodeSingleUse(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := s.CreateAuthCode(c, sampleCode("h1")); err != nil {
		t.Fatal(err)
	}
	got, err := s.ConsumeAuthCode(c, "h1", ts(1010))
	if err != nil {
		t.Fatal(err)
	}
	if got.User != "alice" || got.AccessJTI != "jti-h1" || got.FamilyID != "fam-h1" || got.Nonce != "n" ||
		!slices.Equal(got.Scopes, []string{"openid"}) || got.CodeChallenge != "cc" {
		t.Fatalf("consumed = %+v", got)
	}
	wantTime(t, "used_at", got.UsedAt, ts(1010))
	again, err := s.ConsumeAuthCode(c, "h1", ts(1020))
	if !errors.Is(err, store.ErrReused) {
		t.Fatalf("second use: %v, want ErrReused", err)
	}
	if again.AccessJTI != "jti-h1" || again.FamilyID != "fam-h1" {
		t.Fatalf("reused code must name what to revoke: %+v", again)
	}
	if _, err := s.ConsumeAuthCode(c, "missing", ts(1010)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing code: %v", err)
	}
	if err := s.CreateAuthCode(c, sampleCode("h2")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConsumeAuthCode(c, "h2", ts(1060)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired code: %v", err)
	}
}

func testAuthCodeConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := s.CreateAuthCode(c, sampleCode("hc")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = s.ConsumeAuthCode(c, "hc", ts(1010)) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !errors.Is(err, store.ErrReused) {
			t.Errorf("unexpected: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent exchanges won, want 1", ok)
	}
}

func testRefreshRotation(t *testing.T, s store.Store) {
	c := ctx(t)
	rt := store.RefreshToken{Hash: "r1", FamilyID: "f1", ClientID: "portal", User: "alice", Scopes: []string{"openid", "offline_access"},
		AuthTime: ts(900), AMR: []string{"pwd"}, CreatedAt: ts(1000), ExpiresAt: ts(9000)}
	if err := s.CreateRefreshToken(c, rt); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateRefreshToken(c, "other", "r1", "r2", ts(1100), ts(9100)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rotation by another client: %v", err)
	}
	next, err := s.RotateRefreshToken(c, "portal", "r1", "r2", ts(1100), ts(9100))
	if err != nil {
		t.Fatal(err)
	}
	if next.Hash != "r2" || next.FamilyID != "f1" || next.User != "alice" || !slices.Equal(next.Scopes, rt.Scopes) {
		t.Fatalf("successor = %+v", next)
	}
	wantTime(t, "auth_time", next.AuthTime, ts(900))
	old, err := s.GetRefreshToken(c, "r1")
	if err != nil {
		t.Fatal(err)
	}
	wantTime(t, "used_at", old.UsedAt, ts(1100))
	// Reuse of r1 revokes the family, r2 included.
	if _, err := s.RotateRefreshToken(c, "portal", "r1", "r3", ts(1200), ts(9200)); !errors.Is(err, store.ErrReused) {
		t.Fatalf("reuse: %v, want ErrReused", err)
	}
	r2, err := s.GetRefreshToken(c, "r2")
	if err != nil {
		t.Fatal(err)
	}
	if !r2.Revoked {
		t.Fatal("reuse did not revoke the family")
	}
	if _, err := s.GetRefreshToken(c, "r3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("reuse stored a successor: %v", err)
	}
	if _, err := s.RotateRefreshToken(c, "portal", "r2", "r4", ts(1300), ts(9300)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rotation of revoked token: %v", err)
	}
	// Expired tokens do not rotate.
	if err := s.CreateRefreshToken(c, store.RefreshToken{Hash: "e1", FamilyID: "f2", ClientID: "portal", User: "bob", AuthTime: ts(1), ExpiresAt: ts(2000)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateRefreshToken(c, "portal", "e1", "e2", ts(2000), ts(3000)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired rotation: %v", err)
	}
}

func testRefreshRevokeUser(t *testing.T, s store.Store) {
	c := ctx(t)
	for i, u := range []string{"alice", "alice", "bob"} {
		if err := s.CreateRefreshToken(c, store.RefreshToken{Hash: string(rune('a' + i)), FamilyID: u, ClientID: "p", User: u, AuthTime: ts(1), ExpiresAt: ts(9000)}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.RevokeUserRefreshTokens(c, "alice")
	if err != nil || n != 2 {
		t.Fatalf("revoked %d, %v; want 2", n, err)
	}
	b, _ := s.GetRefreshToken(c, "c")
	if b.Revoked {
		t.Fatal("bob's token revoked")
	}
	if err := s.RevokeRefreshFamily(c, "bob"); err != nil {
		t.Fatal(err)
	}
	if b, _ = s.GetRefreshToken(c, "c"); !b.Revoked {
		t.Fatal("family revocation missed")
	}
}

func testAccessDenylist(t *testing.T, s store.Store) {
	c := ctx(t)
	if r, err := s.AccessTokenRevoked(c, "j1"); err != nil || r {
		t.Fatalf("fresh jti revoked=%v err=%v", r, err)
	}
	for range 2 {
		if err := s.RevokeAccessToken(c, "j1", ts(5000)); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := s.AccessTokenRevoked(c, "j1"); err != nil || !r {
		t.Fatalf("revoked jti revoked=%v err=%v", r, err)
	}
}

func testSessions(t *testing.T, s store.Store) {
	c := ctx(t)
	se := store.Session{IDHash: "s1", User: "alice", AuthTime: ts(1000), LastSeen: ts(1000), ExpiresAt: ts(2000), AMR: []string{"pwd"}}
	if err := s.CreateSession(c, se); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSession(c, "s1", ts(1500))
	if err != nil {
		t.Fatal(err)
	}
	if got.User != "alice" || !slices.Equal(got.AMR, []string{"pwd"}) {
		t.Fatalf("session = %+v", got)
	}
	wantTime(t, "auth_time", got.AuthTime, ts(1000))
	if _, err := s.GetSession(c, "s1", ts(2000)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("idle session: %v", err)
	}
	if err := s.TouchSession(c, "s1", ts(1900), ts(3000)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(c, "s1", ts(2500)); err != nil {
		t.Fatalf("touched session: %v", err)
	}
	if err := s.DeleteSession(c, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(c, "s1", ts(1500)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted session: %v", err)
	}
	_ = s.CreateSession(c, store.Session{IDHash: "s2", User: "bob", AuthTime: ts(1), LastSeen: ts(1), ExpiresAt: ts(9000)})
	// A user's live sessions, the most recently used first; expired
	// ones and other users' are not listed.
	_ = s.CreateSession(c, store.Session{IDHash: "s3", User: "bob", AuthTime: ts(2), LastSeen: ts(5), ExpiresAt: ts(9000), AMR: []string{"pwd"}})
	_ = s.CreateSession(c, store.Session{IDHash: "s4", User: "bob", AuthTime: ts(2), LastSeen: ts(3), ExpiresAt: ts(1000)})
	_ = s.CreateSession(c, store.Session{IDHash: "s5", User: "carol", AuthTime: ts(2), LastSeen: ts(3), ExpiresAt: ts(9000)})
	list, err := s.ListUserSessions(c, "bob", ts(1500))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].IDHash != "s3" || list[1].IDHash != "s2" || !slices.Equal(list[0].AMR, []string{"pwd"}) {
		t.Fatalf("bob's live sessions = %+v, want s3 then s2", list)
	}
	wantTime(t, "last_seen", list[0].LastSeen, ts(5))
	if none, err := s.ListUserSessions(c, "nobody", ts(1500)); err != nil || len(none) != 0 {
		t.Fatalf("sessions of nobody = %v, %v", none, err)
	}
	if err := s.DeleteUserSessions(c, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(c, "s2", ts(1500)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("user's sessions not deleted: %v", err)
	}
}

func testConsents(t *testing.T, s store.Store) {
	c := ctx(t)
	if got, err := s.GetConsent(c, "alice", "portal"); err != nil || got != nil {
		t.Fatalf("no consent: %v %v", got, err)
	}
	if err := s.PutConsent(c, "alice", "portal", []string{"openid"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutConsent(c, "alice", "portal", []string{"openid", "profile"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetConsent(c, "alice", "portal")
	if err != nil || !slices.Equal(got, []string{"openid", "profile"}) {
		t.Fatalf("consent = %v %v", got, err)
	}
	if got, _ := s.GetConsent(c, "bob", "portal"); got != nil {
		t.Fatalf("bob's consent = %v", got)
	}
}

func testAssertionJTI(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := s.UseAssertionJTI(c, "cli", "j", ts(1000), ts(1100)); err != nil {
		t.Fatal(err)
	}
	if err := s.UseAssertionJTI(c, "cli", "j", ts(1050), ts(1150)); !errors.Is(err, store.ErrReused) {
		t.Fatalf("replay: %v, want ErrReused", err)
	}
	if err := s.UseAssertionJTI(c, "other", "j", ts(1050), ts(1150)); err != nil {
		t.Fatalf("same jti of another client: %v", err)
	}
	if err := s.UseAssertionJTI(c, "cli", "j", ts(1100), ts(1200)); err != nil {
		t.Fatalf("jti after expiry: %v", err)
	}
}

func testPruneAuth(t *testing.T, s store.Store) {
	c := ctx(t)
	_ = s.RevokeAccessToken(c, "old", ts(1000))
	_ = s.RevokeAccessToken(c, "new", ts(3000))
	_ = s.CreateSession(c, store.Session{IDHash: "s", User: "u", AuthTime: ts(1), LastSeen: ts(1), ExpiresAt: ts(1000)})
	n, err := s.PruneAuth(c, ts(2000))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("pruned %d rows, want 2", n)
	}
	if r, _ := s.AccessTokenRevoked(c, "new"); !r {
		t.Error("pruned a live revocation")
	}
}

func testDPoPJTI(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := s.UseDPoPJTI(c, "k1", "j", ts(1000), ts(1100)); err != nil {
		t.Fatal(err)
	}
	if err := s.UseDPoPJTI(c, "k1", "j", ts(1050), ts(1150)); !errors.Is(err, store.ErrReused) {
		t.Fatalf("replay: %v, want ErrReused", err)
	}
	if err := s.UseDPoPJTI(c, "k2", "j", ts(1050), ts(1150)); err != nil {
		t.Fatalf("same jti of another key: %v", err)
	}
	if n, err := s.PruneAuth(c, ts(1100)); err != nil || n != 1 {
		t.Fatalf("prune = %d, %v; want the expired proof jti pruned", n, err)
	}
	if err := s.UseDPoPJTI(c, "k1", "j", ts(1100), ts(1200)); err != nil {
		t.Fatalf("jti after expiry: %v", err)
	}
	if err := s.UseDPoPJTI(c, "k2", "j", ts(1120), ts(1200)); !errors.Is(err, store.ErrReused) {
		t.Fatalf("replay of a live jti after a prune: %v, want ErrReused", err)
	}
}

// testDPoPJTIConcurrent: of proofs with one jti presented at once (to
// several servers), exactly one is accepted.
func testDPoPJTIConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = s.UseDPoPJTI(c, "k", "same", ts(1000), ts(1100)) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrReused):
			t.Fatalf("concurrent use: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent uses accepted, want 1", ok, len(errs))
	}
}

// testProtocolFields: a refresh token's DPoP key survives rotation;
// clients' origins and audiences, requests' response mode, resources and
// dpop_jkt, and codes' resources and dpop_jkt are stored.
func testProtocolFields(t *testing.T, s store.Store) {
	c := ctx(t)
	rt := store.RefreshToken{Hash: "b1", FamilyID: "fb", ClientID: "spa", User: "alice", Scopes: []string{"openid"},
		AuthTime: ts(1000), CreatedAt: ts(1000), ExpiresAt: ts(9000), DPoPJKT: "thumb",
		Resources: []string{"https://api.example.com", "https://erp.example"}}
	if err := s.CreateRefreshToken(c, rt); err != nil {
		t.Fatal(err)
	}
	const resources = "[https://api.example.com https://erp.example]"
	if got, err := s.GetRefreshToken(c, "b1"); err != nil || got.DPoPJKT != "thumb" || fmt.Sprint(got.Resources) != resources {
		t.Fatalf("read = %+v, %v; want dpop_jkt thumb and the resources", got, err)
	}
	next, err := s.RotateRefreshToken(c, "spa", "b1", "b2", ts(1100), ts(9100))
	if err != nil || next.DPoPJKT != "thumb" || fmt.Sprint(next.Resources) != resources {
		t.Fatalf("rotated = %+v, %v; want dpop_jkt and resources kept", next, err)
	}
	if got, err := s.GetRefreshToken(c, "b2"); err != nil || got.DPoPJKT != "thumb" || fmt.Sprint(got.Resources) != resources {
		t.Fatalf("successor read = %+v, %v; want dpop_jkt thumb and the resources", got, err)
	}
	if err := s.CreateRefreshToken(c, store.RefreshToken{Hash: "b3", FamilyID: "fc", ClientID: "spa", User: "alice",
		AuthTime: ts(1000), CreatedAt: ts(1000), ExpiresAt: ts(9000)}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetRefreshToken(c, "b3"); err != nil || got.Resources != nil {
		t.Fatalf("a grant without resources read = %+v, %v; want none", got, err)
	}

	cl := store.Client{ID: "spa", GrantTypes: []string{"authorization_code"}, TokenEndpointAuthMethod: "none", Consent: "user",
		AllowedOrigins: []string{"http://127.0.0.1:9000"}, Audiences: []string{"https://api.example"}}
	if err := s.CreateClient(c, cl); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetClient(c, "spa")
	if err != nil || !slices.Equal(got.AllowedOrigins, cl.AllowedOrigins) || !slices.Equal(got.Audiences, cl.Audiences) {
		t.Fatalf("client = %+v, %v", got, err)
	}
	cl.AllowedOrigins, cl.Audiences = nil, []string{"urn:a", "urn:b"}
	if err := s.UpdateClient(c, cl); err != nil {
		t.Fatal(err)
	}
	if got, err = s.GetClient(c, "spa"); err != nil || got.AllowedOrigins != nil || !slices.Equal(got.Audiences, cl.Audiences) {
		t.Fatalf("updated client = %+v, %v", got, err)
	}

	r := store.AuthRequest{ID: "rq", ClientID: "spa", RedirectURI: "https://rp/cb", ResponseType: "code",
		ResponseMode: "form_post", Resource: []string{"urn:a"}, MaxAge: -1, CreatedAt: ts(1000), ExpiresAt: ts(2000), DPoPJKT: "jkt-of-a"}
	if err := s.CreateAuthRequest(c, r); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetAuthRequest(c, "rq", ts(1500)); err != nil || got.ResponseMode != "form_post" || !slices.Equal(got.Resource, r.Resource) || got.DPoPJKT != "jkt-of-a" {
		t.Fatalf("request = %+v, %v", got, err)
	}
	code := sampleCode("hr")
	code.Resource = []string{"urn:a", "urn:b"}
	code.DPoPJKT = "jkt-of-a"
	if err := s.CreateAuthCode(c, code); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ConsumeAuthCode(c, "hr", ts(1010)); err != nil || !slices.Equal(got.Resource, code.Resource) || got.DPoPJKT != "jkt-of-a" {
		t.Fatalf("code = %+v, %v", got, err)
	}
}
