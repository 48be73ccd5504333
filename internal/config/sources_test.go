package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSecretsFromEnvironment(t *testing.T) {
	f := writeFile(t, "f.yaml", `server:
  public_url: "https://${HOST}"
database: ${DB}
auth:
  refresh_tokens: ${REFRESH}
  access_token_ttl: ${TTL}
clients:
  - id: portal
    secret: ${PORTAL_SECRET}
    redirect_uris: ["https://${HOST}/cb"]
    grant_types: [client_credentials, authorization_code]
  - id: literal
    secret: "a$${NOT_A_VAR}b$x"
    grant_types: [client_credentials]
oauth_servers:
  - name: graph
    token_endpoint: https://login.example/token
    client_id: ${GRAPH_ID}
    client_secret: ${GRAPH_SECRET}
`)
	cfg, err := Load(Overrides{ConfigFile: f}, env(map[string]string{
		"HOST": "flowgate.example", "DB": "postgres://db/flowgate", "REFRESH": "false", "TTL": "5m",
		"PORTAL_SECRET": "portal-s3cret", "GRAPH_ID": "gid", "GRAPH_SECRET": "graph-s3cret",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.PublicURL != "https://flowgate.example" || cfg.Database != "postgres://db/flowgate" {
		t.Errorf("server/database = %q %q", cfg.Server.PublicURL, cfg.Database)
	}
	// A plain value is typed after the replacement: false is a boolean.
	if cfg.Auth.RefreshTokens || cfg.Auth.AccessTokenTTL != 5*time.Minute {
		t.Errorf("auth = %+v", cfg.Auth)
	}
	if got := cfg.Clients[0]; got.Secret != "portal-s3cret" || !reflect.DeepEqual(got.RedirectURIs, []string{"https://flowgate.example/cb"}) {
		t.Errorf("client = %+v", got)
	}
	if got := cfg.Clients[1].Secret; got != "a${NOT_A_VAR}b$x" {
		t.Errorf("escaped secret = %q", got)
	}
	if s := cfg.OAuthServers[0]; s.ClientID != "gid" || s.ClientSecret != "graph-s3cret" {
		t.Errorf("oauth server = %+v", s)
	}
}

func TestSecretsFromEnvironmentErrors(t *testing.T) {
	f := writeFile(t, "f.yaml", `clients:
  - id: portal
    secret: ${PORTAL_SECRET}
    grant_types: [client_credentials]
  - id: other
    secret: "${not-a-name}"
    grant_types: [client_credentials]
  - id: third
    secret: "x${OPEN"
    grant_types: [client_credentials]
users:
  - username: alice
    password: ${EMPTY}
`)
	_, err := Load(Overrides{ConfigFile: f}, env(map[string]string{"EMPTY": ""}))
	want := []string{
		f + `:3:13: clients[0].secret: environment variable PORTAL_SECRET is not set (or is empty)`,
		f + `:6:13: clients[1].secret: ${not-a-name} is not a reference to an environment variable (letters, digits and _); write $${ for a literal ${`,
		f + `:9:13: clients[2].secret: "${OPEN" has ${ without a closing }; write $${ for a literal ${`,
		f + `:13:15: users[0].password: environment variable EMPTY is not set (or is empty)`,
	}
	if got := lines(err); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Parse reads no environment.
	if _, err := Parse([]byte("database: ${DB}\n"), "p.yaml"); err == nil || !strings.Contains(err.Error(), "p.yaml:1:11: database: environment variable DB is not set") {
		t.Errorf("Parse: %v", err)
	}
}

func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("client", "client-s3cret\n") // read through ${SECRET_DIR}; a trailing line break is dropped
	password := write("password", "alice-passw0rd\r\n")
	serverSecret := write("graph", "graph s3cret with spaces")
	idpSecret := write("idp", "idp-s3cret")
	dsn := write("database", "postgres://flowgate:pw@db:5432/flowgate\n")
	f := writeFile(t, "f.yaml", `database_file: `+dsn+`
users:
  - username: alice
    password_file: `+password+`
clients:
  - id: portal
    secret_file: ${SECRET_DIR}/client
    grant_types: [client_credentials]
oauth_servers:
  - name: graph
    token_endpoint: https://login.example/token
    client_id: gid
    client_secret_file: `+serverSecret+`
identity_providers:
  - name: corp
    issuer: https://idp.example
    client_id: flowgate
    client_secret_file: `+idpSecret+`
`)
	cfg, err := Load(Overrides{ConfigFile: f}, env(map[string]string{"SECRET_DIR": dir}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Database != "postgres://flowgate:pw@db:5432/flowgate" {
		t.Errorf("database = %q", cfg.Database)
	}
	if got := cfg.Users[0].Password; got != "alice-passw0rd" {
		t.Errorf("password = %q", got)
	}
	if got := cfg.Clients[0].Secret; got != "client-s3cret" {
		t.Errorf("client secret = %q", got)
	}
	if got := cfg.OAuthServers[0].ClientSecret; got != "graph s3cret with spaces" {
		t.Errorf("oauth server secret = %q", got)
	}
	if got := cfg.IdentityProviders[0].ClientSecret; got != "idp-s3cret" {
		t.Errorf("identity provider secret = %q", got)
	}
}

func TestSecretsFromFilesErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "absent")
	f := writeFile(t, "f.yaml", `clients:
  - id: portal
    secret_file: `+missing+`
    grant_types: [client_credentials]
  - id: both
    secret: x
    secret_file: `+missing+`
    grant_types: [client_credentials]
  - id: empty
    secret_file: ""
    grant_types: [client_credentials]
  - id: notsecret
    id_file: /etc/hostname
`)
	_, err := Load(Overrides{ConfigFile: f}, nil)
	want := []string{
		f + `:3:18: clients[0].secret_file: open ` + missing + `: no such file or directory`,
		f + `:7:5: clients[1].secret_file: give secret or secret_file, not both`,
		f + `:10:18: clients[2].secret_file: must be the path of a file holding the secret`,
	}
	if got := lines(err); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Only secret keys have a _file variant: id_file stays an unknown key.
	_, err = Parse([]byte("clients:\n  - id: a\n    id_file: /etc/hostname\n"), "p.yaml")
	if err == nil || !strings.Contains(err.Error(), "p.yaml:3:5: clients[0].id_file: unknown key") {
		t.Errorf("id_file: %v", err)
	}
}

// A value read from the environment or a file is never repeated in an
// error about it.
func TestSecretsFromSourcesNotInErrors(t *testing.T) {
	const s = "Sup3rS3cretValue"
	p := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, doc := range []string{
		"clients:\n  - id: a\n    token_endpoint_auth_method: none\n    secret: ${S}\n    redirect_uris: [https://a.example/cb]\n",
		"clients:\n  - id: a\n    token_endpoint_auth_method: none\n    secret_file: " + p + "\n    redirect_uris: [https://a.example/cb]\n",
		"users:\n  - username: a\n    password_hash_file: " + p + "\n",
	} {
		f := writeFile(t, "f.yaml", doc)
		_, err := Load(Overrides{ConfigFile: f}, env(map[string]string{"S": s}))
		if err == nil {
			t.Errorf("doc %d: no error", i)
			continue
		}
		if strings.Contains(err.Error(), s) {
			t.Errorf("doc %d: error leaks the secret:\n%v", i, err)
		}
	}
}
