package resource

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// apiServer is the shape of Flowgate's /api/v1: Middleware in front of everything, scopes per
// route.
func apiServer(v *Validator) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/me", v.MeHandler())
	mux.Handle("POST /api/v1/workflows/{name}/instances", v.RequireScope("workflows.start",
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := PrincipalFrom(r.Context())
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(p.ID))
		})))
	return v.Middleware(mux)
}

type errorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func do(t *testing.T, h http.Handler, method, path, authz string) (*httptest.ResponseRecorder, errorBody) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var body errorBody
	if rec.Code >= 400 {
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("error Content-Type = %q", ct)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == "" {
			t.Fatalf("error body %q: %v", rec.Body, err)
		}
	}
	return rec, body
}

func TestMiddlewareErrors(t *testing.T) {
	key := newECKey(t, "own-1")
	s := newOwnSetup(t, key)
	v, err := newTestValidator(t.Context(), s.own, nil, Options{Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	h := apiServer(v)

	t.Run("no token: bare challenge", func(t *testing.T) {
		for _, authz := range []string{"", "Basic YWxpY2U6c2VjcmV0"} {
			rec, body := do(t, h, "GET", "/api/v1/me", authz)
			if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != `Bearer realm="flowgate"` || body.Error != CodeUnauthorized {
				t.Fatalf("%q: %d %q %+v", authz, rec.Code, rec.Header().Get("WWW-Authenticate"), body)
			}
		}
	})
	t.Run("expired token", func(t *testing.T) {
		c := claimsFor(ownIss, ownIss, "alice")
		c["exp"] = time.Now().Add(-2 * time.Minute).Unix()
		rec, body := do(t, h, "GET", "/api/v1/me", "Bearer "+key.sign(t, c))
		want := `Bearer realm="flowgate", error="invalid_token", error_description="token expired at `
		if rec.Code != 401 || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), want) ||
			body.Error != CodeInvalidToken || !strings.HasPrefix(body.ErrorDescription, "token expired at ") {
			t.Fatalf("%d %q %+v", rec.Code, rec.Header().Get("WWW-Authenticate"), body)
		}
	})
	t.Run("wrong audience names expected and found", func(t *testing.T) {
		rec, body := do(t, h, "GET", "/api/v1/me", "Bearer "+key.sign(t, claimsFor(ownIss, "api://elsewhere", "alice")))
		want := `Bearer realm="flowgate", error="invalid_token", error_description="wrong audience: expected https://flowgate.example or https://flowgate.example/api, found api://elsewhere"`
		if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != want || body.Error != CodeInvalidToken {
			t.Fatalf("%d %q %+v", rec.Code, rec.Header().Get("WWW-Authenticate"), body)
		}
	})
	t.Run("insufficient scope", func(t *testing.T) {
		c := claimsFor(ownIss, ownIss, "alice")
		c["scope"] = "workflows.read"
		rec, body := do(t, h, "POST", "/api/v1/workflows/x/instances", "Bearer "+key.sign(t, c))
		want := `Bearer realm="flowgate", error="insufficient_scope", error_description="the token does not grant scope workflows.start", scope="workflows.start"`
		if rec.Code != 403 || rec.Header().Get("WWW-Authenticate") != want || body.Error != CodeInsufficientScope {
			t.Fatalf("%d %q %+v", rec.Code, rec.Header().Get("WWW-Authenticate"), body)
		}
		c["scope"] = "workflows.read workflows.start"
		rec, _ = do(t, h, "POST", "/api/v1/workflows/x/instances", "bearer "+key.sign(t, c))
		if rec.Code != 201 || rec.Body.String() != "user:alice" {
			t.Fatalf("with the scope: %d %q", rec.Code, rec.Body)
		}
	})
	t.Run("DPoP scheme", func(t *testing.T) {
		rec, body := do(t, h, "GET", "/api/v1/me", "DPoP "+key.sign(t, claimsFor(ownIss, ownIss, "alice")))
		// An unbound token with the DPoP scheme: RFC 9449 §7.1 wants the token bound to the
		// proof's key, so it is refused, with a DPoP challenge.
		if rec.Code != 401 || body.ErrorDescription != "token is not DPoP-bound: send it as Authorization: Bearer" ||
			!strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `DPoP algs="`) ||
			!strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("%d %q %+v", rec.Code, rec.Header().Get("WWW-Authenticate"), body)
		}
	})
	t.Run("empty bearer", func(t *testing.T) {
		rec, body := do(t, h, "GET", "/api/v1/me", "Bearer ")
		if rec.Code != 400 || body.Error != CodeInvalidRequest {
			t.Fatalf("%d %+v", rec.Code, body)
		}
	})
	t.Run("revocation store down", func(t *testing.T) {
		own := s.own
		own.Revoked = func(context.Context, string) (bool, error) { return false, errors.New("store down") }
		v2, err := newTestValidator(t.Context(), own, nil, Options{Logger: quietLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		rec, body := do(t, apiServer(v2), "GET", "/api/v1/me", "Bearer "+key.sign(t, claimsFor(ownIss, ownIss, "alice")))
		if rec.Code != 503 || body.Error != CodeTemporarilyUnavailable || rec.Header().Get("WWW-Authenticate") != "" {
			t.Fatalf("%d %+v", rec.Code, body)
		}
	})
}

type meBody struct {
	Principal  string   `json:"principal"`
	Kind       string   `json:"kind"`
	Subject    string   `json:"subject"`
	Issuer     string   `json:"issuer"`
	IssuerName string   `json:"issuer_name"`
	ClientID   string   `json:"client_id"`
	Roles      []string `json:"roles"`
	Scopes     []string `json:"scopes"`
	Audience   []string `json:"audience"`
	ExpiresAt  string   `json:"expires_at"`
}

func TestMe(t *testing.T) {
	key := newECKey(t, "own-1")
	s := newOwnSetup(t, key)
	extKey := newRSAKey(t, "ext-1")
	gi := newGoIssuer(t, extKey)
	v, err := newTestValidator(t.Context(), s.own, []IssuerConfig{{Name: "entra", Issuer: gi.iss, Audience: "api://flowgate",
		SubjectClaim: "oid", ScopeClaim: "scp"}}, Options{Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	h := apiServer(v)
	exp := time.Now().Add(10 * time.Minute).Truncate(time.Second)

	user := claimsFor(ownIss, ownIss, "alice")
	user["client_id"], user["scope"], user["exp"] = "portal", "openid tasks", exp.Unix()
	client := claimsFor(ownIss, ownIss, "portal")
	client["client_id"], client["gty"], client["exp"] = "portal", "client_credentials", exp.Unix()
	ext := claimsFor(gi.iss, "", "pairwise-sub")
	ext["aud"] = []string{"api://flowgate", "other"}
	ext["oid"], ext["scp"], ext["roles"], ext["exp"] = "8d2f-oid", "Workflows.Read", []string{"employee"}, exp.Unix()

	for _, tc := range []struct {
		raw  string
		want meBody
	}{
		{key.sign(t, user), meBody{"user:alice", "user", "alice", ownIss, "flowgate", "portal",
			[]string{"employee", "approver"}, []string{"openid", "tasks"}, []string{ownIss}, ""}},
		{key.sign(t, client), meBody{"client:portal", "client", "portal", ownIss, "flowgate", "portal",
			[]string{"invoicer"}, []string{}, []string{ownIss}, ""}},
		{extKey.sign(t, ext), meBody{"entra:8d2f-oid", "external", "8d2f-oid", gi.iss, "entra", "",
			[]string{"employee"}, []string{"Workflows.Read"}, []string{"api://flowgate", "other"}, ""}},
	} {
		rec, _ := do(t, h, "GET", "/api/v1/me", "Bearer "+tc.raw)
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", tc.want.Principal, rec.Code, rec.Body)
		}
		var got meBody
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		tc.want.ExpiresAt = exp.UTC().Format(time.RFC3339)
		if got.Principal != tc.want.Principal || got.Kind != tc.want.Kind || got.Subject != tc.want.Subject ||
			got.Issuer != tc.want.Issuer || got.IssuerName != tc.want.IssuerName || got.ClientID != tc.want.ClientID ||
			!slices.Equal(got.Roles, tc.want.Roles) || !slices.Equal(got.Scopes, tc.want.Scopes) ||
			!slices.Equal(got.Audience, tc.want.Audience) || got.ExpiresAt != tc.want.ExpiresAt {
			t.Errorf("/me = %+v\nwant   %+v", got, tc.want)
		}
		if !strings.HasSuffix(got.ExpiresAt, "Z") {
			t.Errorf("expires_at %q is not UTC", got.ExpiresAt)
		}
	}
}
