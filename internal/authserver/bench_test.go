package authserver

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/server"
)

// BenchmarkTokenClientCredentials is the load script's (b) in process: a
// client_credentials request with client_secret_basic through the whole
// server (middleware with its JSON access log, op, client authentication,
// signing, the audit writer on SQLite), without the network. allocs/op and
// B/op are steadier than req/s on a shared machine.
func BenchmarkTokenClientCredentials(b *testing.B) {
	e := newEnv(b, nil, nil, true)
	w := audit.NewWriter(e.st, nil, audit.Options{})
	b.Cleanup(func() { _ = w.Close(context.Background()) })
	e.srv.opts.Auditor = w
	srv := server.New(e.st, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	e.srv.Register(srv.Mux())
	h := srv.Handler()
	const body = "grant_type=client_credentials&scope=workflows.read"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest(http.MethodPost, PathToken, strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.SetBasicAuth("portal", portalSecret)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
}
