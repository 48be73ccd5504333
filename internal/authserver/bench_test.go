package authserver

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/server"
	"github.com/flowgate/flowgate/internal/tokenrules"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
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

// BenchmarkTokenMint is the minting of one client-credentials access
// token alone: its claims as JSON and the ES256 JWS.
func BenchmarkTokenMint(b *testing.B) {
	e := newEnv(b, nil, nil, false)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := e.srv.mintAccess("svc", "svc", tokenrules.GrantClientCredentials, []string{"workflows.read"}, "", time.Time{}, now, binding{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenForm is the decoding op does of a client-credentials
// request with our decoder: the client's credentials, then the grant.
func BenchmarkTokenForm(b *testing.B) {
	d := newFormDecoder()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"workflows.read"}, "client_id": {"svc"}, "client_secret": {"secret"}}
	b.ReportAllocs()
	for b.Loop() {
		var cc op.ClientCredentials
		var req oidc.ClientCredentialsRequest
		if err := d.Decode(&cc, form); err != nil {
			b.Fatal(err)
		}
		if err := d.Decode(&req, form); err != nil {
			b.Fatal(err)
		}
	}
}
