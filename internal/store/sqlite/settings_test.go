package sqlite_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowgate/flowgate/internal/store"
)

// TestOAuthServerSecretAtRest looks at the raw file: an OAuth server's
// client secret is sealed, and bound to the server's name.
func TestOAuthServerSecretAtRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.db")
	s := open(t, path)
	ctx := t.Context()
	const plain = "OAUTH-CLIENT-SECRET-MARKER-51c2e8"
	srv := store.OAuthServer{Name: "graph", TokenEndpoint: "https://login.example.com/token",
		ClientID: "graph-client-marker", ClientSecret: plain, ClientAuth: "client_secret_basic"}
	if err := s.CreateOAuthServer(ctx, srv); err != nil {
		t.Fatal(err)
	}
	wal, err := os.ReadFile(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(wal, []byte("graph-client-marker")) {
		t.Fatal("the row is not in the WAL: the test would prove nothing")
	}
	if bytes.Contains(wal, []byte(plain)) {
		t.Error("plaintext client secret found in the -wal file")
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(db, []byte("graph-client-marker")) {
		t.Fatal("the row is not in the database file: the checkpoint did not happen")
	}
	if bytes.Contains(db, []byte(plain)) {
		t.Error("plaintext client secret found in the database file")
	}
	if got, err := s.GetOAuthServer(ctx, "graph"); err != nil || got.ClientSecret != plain {
		t.Fatalf("secret does not read back: %v", err)
	}

	// The sealed secret copied to another server's row must not open.
	if _, err := s.WriteDB().ExecContext(ctx,
		`INSERT INTO oauth_servers (name, token_endpoint, client_id, client_secret, client_auth, created_at, updated_at)
		 SELECT 'stolen', token_endpoint, client_id, client_secret, client_auth, created_at, updated_at FROM oauth_servers WHERE name = 'graph'`); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetOAuthServer(ctx, "stolen"); err == nil {
		t.Errorf("a secret copied to another server opened: %q", got.ClientSecret)
	}
}
