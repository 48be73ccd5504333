package config

import (
	"errors"
	"strings"
	"testing"
)

func TestEntryValidate(t *testing.T) {
	ti := TrustedIssuer{Name: "kc", Issuer: "https://kc.example/realms/x/", Audience: "a"}
	err := ti.Validate()
	ti = ti.WithDefaults()
	if err != nil || ti.MetadataURL != "https://kc.example/realms/x/.well-known/openid-configuration" || ti.SubjectClaim != "sub" {
		t.Errorf("trusted issuer = %+v, %v", ti, err)
	}
	err = TrustedIssuer{Name: "kc", Issuer: "ftp://x", ScopeMap: map[string]string{"a": "nope"}}.Validate()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "issuer" || fe.Line != 0 {
		t.Errorf("bad issuer: first error %v, want path issuer without position", err)
	}
	for _, want := range []string{"audience: is required", "scope_map.a:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad issuer error %q does not mention %q", err, want)
		}
	}
	os := OAuthServer{Name: "g", TokenEndpoint: "https://t.example/token", ClientID: "c", ClientSecret: "s"}
	err = os.Validate()
	os = os.WithDefaults()
	if err != nil || os.ClientAuth != "client_secret_basic" || os.RefreshEndpoint != "https://t.example/token" {
		t.Errorf("oauth server = %+v, %v", os, err)
	}
	if err := (OAuthServer{Name: "g", ClientID: "c", ClientSecret: "s"}).Validate(); err == nil || !strings.Contains(err.Error(), "metadata_url") {
		t.Errorf("server without endpoints: %v", err)
	}
	if err := (User{Username: "a b"}).Validate(); err == nil || !strings.Contains(err.Error(), "username") {
		t.Errorf("bad username: %v", err)
	}
	if err := (User{Username: "alice", Email: "alice@example.com", Roles: []string{"admin"}}).Validate(); err != nil {
		t.Errorf("good user: %v", err)
	}
}
