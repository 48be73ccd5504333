package authserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/flowgate/flowgate/internal/egress"
)

// TestDefaultEgressRefusesLoopbackJWKSURI: a client's jwks_uri is set by an
// administrator; without a client of its own the server fetches it under
// the default egress policy, which refuses loopback before any request.
func TestDefaultEgressRefusesLoopbackJWKSURI(t *testing.T) {
	var fetches atomic.Int32
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		_, _ = io.WriteString(w, `{"keys":[]}`)
	}))
	defer jwksSrv.Close()
	ring := newRing(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := New(ctx, Options{Issuer: "https://flowgate.example", Store: sqliteStore(t, ring), Ring: ring, Auth: testAuth(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_, err = srv.remote.keys(ctx, jwksSrv.URL+"/jwks.json", "")
	var de *egress.DeniedError
	if !errors.As(err, &de) || de.Reason != "loopback" {
		t.Fatalf("fetch: %v, want an egress refusal", err)
	}
	if n := fetches.Load(); n != 0 {
		t.Errorf("jwks_uri fetched %d times", n)
	}
}
