package storetest

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/flowgate/flowgate/internal/store"
)

// runSettingsConformance covers trusted issuers, OAuth servers and the
// key/value settings.
func runSettingsConformance(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"TrustedIssuerCRUD", testTrustedIssuerCRUD},
		{"TrustedIssuerList", testTrustedIssuerList},
		{"OAuthServerCRUD", testOAuthServerCRUD},
		{"OAuthServerList", testOAuthServerList},
		{"OAuthServerDPoPKey", testOAuthServerDPoPKey},
		{"SettingValues", testSettingValues},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func fullIssuer(name string) store.TrustedIssuer {
	return store.TrustedIssuer{
		Name:         name,
		Issuer:       "https://login.example.com/" + name + "/v2.0",
		MetadataURL:  "https://login.example.com/" + name + "/v2.0/.well-known/openid-configuration",
		Audience:     "api://flowgate",
		SubjectClaim: "oid",
		ScopeClaim:   "scp",
		RolesClaim:   "realm_access.roles",
		ScopeMap:     map[string]string{"Flowgate.Read": "workflows.read", "Flowgate.Admin": "admin"},
		Source:       store.SourceConfig,
		CreatedAt:    ts(1_700_000_000),
		UpdatedAt:    ts(1_700_000_100),
	}
}

func sameIssuer(t *testing.T, got, want store.TrustedIssuer) {
	t.Helper()
	wantTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	wantTime(t, "UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt = want.CreatedAt, want.UpdatedAt, got.CreatedAt, got.UpdatedAt
	if got.Name != want.Name || got.Issuer != want.Issuer || got.MetadataURL != want.MetadataURL ||
		got.Audience != want.Audience || got.SubjectClaim != want.SubjectClaim || got.ScopeClaim != want.ScopeClaim ||
		got.RolesClaim != want.RolesClaim || !maps.Equal(got.ScopeMap, want.ScopeMap) || got.Source != want.Source {
		t.Errorf("trusted issuer = %+v, want %+v", got, want)
	}
}

func testTrustedIssuerCRUD(t *testing.T, s store.Store) {
	want := fullIssuer("entra")
	if err := s.CreateTrustedIssuer(ctx(t), want); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetTrustedIssuer(ctx(t), "entra")
	if err != nil {
		t.Fatal(err)
	}
	sameIssuer(t, got, want)

	if err := s.CreateTrustedIssuer(ctx(t), want); !errors.Is(err, store.ErrConflict) {
		t.Errorf("same name again: %v, want ErrConflict", err)
	}
	other := fullIssuer("other")
	other.Issuer = want.Issuer
	if err := s.CreateTrustedIssuer(ctx(t), other); !errors.Is(err, store.ErrConflict) {
		t.Errorf("same issuer URL under another name: %v, want ErrConflict", err)
	}

	// Update replaces everything but CreatedAt; a nil map reads back nil.
	upd := want
	upd.Issuer = "https://idp.example.org"
	upd.ScopeMap = nil
	upd.Source = store.SourceAPI
	upd.CreatedAt = ts(1)
	upd.UpdatedAt = ts(1_800_000_000)
	if err := s.UpdateTrustedIssuer(ctx(t), upd); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetTrustedIssuer(ctx(t), "entra")
	if err != nil {
		t.Fatal(err)
	}
	upd.CreatedAt = want.CreatedAt
	sameIssuer(t, got, upd)

	// An empty Source means the admin API.
	api := fullIssuer("keycloak")
	api.Source = ""
	if err := s.CreateTrustedIssuer(ctx(t), api); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetTrustedIssuer(ctx(t), "keycloak"); err != nil || got.Source != store.SourceAPI {
		t.Errorf("default source = %q, %v; want api", got.Source, err)
	}
	bad := fullIssuer("bad")
	bad.Source = "file"
	if err := s.CreateTrustedIssuer(ctx(t), bad); err == nil {
		t.Error("source \"file\" was accepted")
	}

	for name, err := range map[string]error{
		"get":    func() error { _, err := s.GetTrustedIssuer(ctx(t), "nobody"); return err }(),
		"update": s.UpdateTrustedIssuer(ctx(t), fullIssuer("nobody")),
		"delete": s.DeleteTrustedIssuer(ctx(t), "nobody"),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s of a missing issuer: %v, want ErrNotFound", name, err)
		}
	}
	if err := s.DeleteTrustedIssuer(ctx(t), "entra"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetTrustedIssuer(ctx(t), "entra"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: %v, want ErrNotFound", err)
	}
}

func testTrustedIssuerList(t *testing.T, s store.Store) {
	if l, next, err := s.ListTrustedIssuers(ctx(t), store.Page{}); err != nil || len(l) != 0 || next != "" {
		t.Fatalf("empty list = %v, %q, %v", l, next, err)
	}
	var names []string
	for i := range 11 {
		names = append(names, fmt.Sprintf("iss-%02d", i))
	}
	for _, i := range rand.Perm(len(names)) {
		if err := s.CreateTrustedIssuer(ctx(t), fullIssuer(names[i])); err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []int{1, 3, 11, 50} {
		all, _ := pageAll(t, limit, func(p store.Page) ([]store.TrustedIssuer, string, error) {
			return s.ListTrustedIssuers(ctx(t), p)
		})
		var got []string
		for _, ti := range all {
			got = append(got, ti.Name)
		}
		if !slices.Equal(got, names) {
			t.Errorf("limit %d: listed %v, want %v", limit, got, names)
		}
		sameIssuer(t, all[0], fullIssuer(names[0]))
	}
	if _, _, err := s.ListTrustedIssuers(ctx(t), store.Page{Cursor: "***"}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("bad cursor: %v, want ErrInvalidCursor", err)
	}
}

func fullOAuthServer(name string) store.OAuthServer {
	return store.OAuthServer{
		Name:                  name,
		MetadataURL:           "https://login.example.com/.well-known/openid-configuration",
		AuthorizationEndpoint: "https://login.example.com/authorize",
		TokenEndpoint:         "https://login.example.com/token",
		RefreshEndpoint:       "https://login.example.com/refresh",
		RevocationEndpoint:    "https://login.example.com/revoke",
		ClientID:              "flowgate-" + name,
		ClientSecret:          "s3cret-" + name,
		ClientAuth:            "client_secret_post",
		Scopes:                []string{"User.Read", "offline_access"},
		Params:                map[string]string{"resource": "https://graph.example.com"},
		UsePrompt:             true,
		DPoP:                  true,
		UsePKCE:               false,
		RedirectURI:           "http://localhost:8080/oauth-callback",
		Source:                store.SourceAPI,
		CreatedAt:             ts(1_700_000_000),
		UpdatedAt:             ts(1_700_000_100),
	}
}

func sameOAuthServer(t *testing.T, got, want store.OAuthServer) {
	t.Helper()
	wantTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	wantTime(t, "UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	if got.Name != want.Name || got.MetadataURL != want.MetadataURL ||
		got.AuthorizationEndpoint != want.AuthorizationEndpoint || got.TokenEndpoint != want.TokenEndpoint ||
		got.RefreshEndpoint != want.RefreshEndpoint || got.RevocationEndpoint != want.RevocationEndpoint ||
		got.ClientID != want.ClientID || got.ClientSecret != want.ClientSecret || got.ClientAuth != want.ClientAuth ||
		got.PrivateKeyFile != want.PrivateKeyFile || got.KeyID != want.KeyID || got.UsePrompt != want.UsePrompt ||
		got.UsePKCE != want.UsePKCE || got.RedirectURI != want.RedirectURI || got.Source != want.Source || got.DPoP != want.DPoP ||
		!slices.Equal(got.Scopes, want.Scopes) || !maps.Equal(got.Params, want.Params) {
		t.Errorf("oauth server = %+v, want %+v", got, want)
	}
}

func testOAuthServerCRUD(t *testing.T, s store.Store) {
	want := fullOAuthServer("graph")
	if err := s.CreateOAuthServer(ctx(t), want); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetOAuthServer(ctx(t), "graph")
	if err != nil {
		t.Fatal(err)
	}
	sameOAuthServer(t, got, want)
	if err := s.CreateOAuthServer(ctx(t), want); !errors.Is(err, store.ErrConflict) {
		t.Errorf("same name again: %v, want ErrConflict", err)
	}

	// private_key_jwt: no secret, which must read back empty.
	upd := want
	upd.ClientSecret = ""
	upd.ClientAuth = "private_key_jwt"
	upd.PrivateKeyFile = "/etc/flowgate/graph.pem"
	upd.KeyID = "k1"
	upd.Scopes, upd.Params = nil, nil
	upd.UsePrompt, upd.UsePKCE = false, true
	upd.Source = store.SourceConfig
	upd.UpdatedAt = ts(1_800_000_000)
	if err := s.UpdateOAuthServer(ctx(t), upd); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetOAuthServer(ctx(t), "graph")
	if err != nil {
		t.Fatal(err)
	}
	sameOAuthServer(t, got, upd)

	// And a secret set again opens again.
	upd.ClientSecret, upd.ClientAuth = "rotated", "client_secret_basic"
	if err := s.UpdateOAuthServer(ctx(t), upd); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetOAuthServer(ctx(t), "graph"); err != nil || got.ClientSecret != "rotated" {
		t.Errorf("after rotation: secret %q, %v", got.ClientSecret, err)
	}

	for name, err := range map[string]error{
		"get":    func() error { _, err := s.GetOAuthServer(ctx(t), "nobody"); return err }(),
		"update": s.UpdateOAuthServer(ctx(t), fullOAuthServer("nobody")),
		"delete": s.DeleteOAuthServer(ctx(t), "nobody"),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s of a missing server: %v, want ErrNotFound", name, err)
		}
	}
	if err := s.DeleteOAuthServer(ctx(t), "graph"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetOAuthServer(ctx(t), "graph"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: %v, want ErrNotFound", err)
	}
}

func testOAuthServerList(t *testing.T, s store.Store) {
	var names []string
	for i := range 9 {
		names = append(names, fmt.Sprintf("srv-%02d", i))
	}
	for _, i := range rand.Perm(len(names)) {
		if err := s.CreateOAuthServer(ctx(t), fullOAuthServer(names[i])); err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []int{1, 4, 9, 50} {
		all, _ := pageAll(t, limit, func(p store.Page) ([]store.OAuthServer, string, error) {
			return s.ListOAuthServers(ctx(t), p)
		})
		var got []string
		for _, o := range all {
			got = append(got, o.Name)
		}
		if !slices.Equal(got, names) {
			t.Errorf("limit %d: listed %v, want %v", limit, got, names)
		}
		for _, o := range all {
			if o.ClientSecret != "s3cret-"+o.Name {
				t.Errorf("%s: listed secret does not open to its own value", o.Name)
			}
		}
	}
}

func testSettingValues(t *testing.T, s store.Store) {
	if _, err := s.GetSetting(ctx(t), "api.workflow"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing setting: %v, want ErrNotFound", err)
	}
	for k, v := range map[string]string{"api.workflow": "true", "api.invoke": "false", "apix": "1", "other": "2"} {
		if err := s.PutSetting(ctx(t), k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutSetting(ctx(t), "api.workflow", "false"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetSetting(ctx(t), "api.workflow"); err != nil || v != "false" {
		t.Errorf("overwritten setting = %q, %v; want false", v, err)
	}
	got, err := s.ListSettings(ctx(t), "api.")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"api.workflow": "false", "api.invoke": "false"}; !maps.Equal(got, want) {
		t.Errorf("ListSettings(api.) = %v, want %v", got, want)
	}
	if all, err := s.ListSettings(ctx(t), ""); err != nil || len(all) != 4 {
		t.Errorf("ListSettings(\"\") = %v, %v; want 4 values", all, err)
	}
}

// testOAuthServerDPoPKey: a server's DPoP key is made once, whoever asks
// first, kept across updates of the entry, sealed, and goes with it.
func testOAuthServerDPoPKey(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.DPoPKey(c, "nope", func() ([]byte, error) { return []byte("k"), nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("key of a missing server: %v, want ErrNotFound", err)
	}
	if err := s.CreateOAuthServer(c, fullOAuthServer("okta")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	keys := make([][]byte, 6)
	errs := make([]error, len(keys))
	for i := range keys {
		wg.Go(func() {
			keys[i], errs[i] = s.DPoPKey(c, "okta", func() ([]byte, error) { return []byte(fmt.Sprintf("key-%d", i)), nil })
		})
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil || string(keys[i]) != string(keys[0]) {
			t.Fatalf("concurrent first uses got %q (%v) and %q: want one key", keys[i], errs[i], keys[0])
		}
	}
	if err := s.UpdateOAuthServer(c, fullOAuthServer("okta")); err != nil {
		t.Fatal(err)
	}
	again, err := s.DPoPKey(c, "okta", func() ([]byte, error) { return nil, errors.New("must not be called") })
	if err != nil || string(again) != string(keys[0]) {
		t.Fatalf("after an update: %q, %v; want the same key", again, err)
	}
	if got, err := s.GetOAuthServer(c, "okta"); err != nil || !got.DPoP {
		t.Fatalf("dpop flag: %+v, %v", got.DPoP, err)
	}
	if err := s.DeleteOAuthServer(c, "okta"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOAuthServer(c, fullOAuthServer("okta")); err != nil {
		t.Fatal(err)
	}
	fresh, err := s.DPoPKey(c, "okta", func() ([]byte, error) { return []byte("new"), nil })
	if err != nil || string(fresh) != "new" {
		t.Fatalf("a new entry of the same name got %q, %v; want a new key", fresh, err)
	}
}
