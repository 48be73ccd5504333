package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/testutil/pgtest"
	"github.com/flowgate/flowgate/internal/testutil/rpclient"
)

const (
	protoAlicePassword = "alice-password-0123456789"
	protoSvcSecret     = "svc-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
	// protoCallback is the relying party's redirect URI; nothing listens
	// there: the test reads the redirect (or the form_post page) itself.
	protoCallback = "http://127.0.0.1:9/cb"
)

// protocolConfig is a server with a confidential DPoP client (svc), a
// public DPoP browser client (spa) and a public client without DPoP (web).
func protocolConfig(extra string) string {
	return `
auth:
  refresh_tokens: true
` + extra + `
users:
  - username: alice
    password: "` + protoAlicePassword + `"
    roles: [employee]
clients:
  - id: svc
    secret: "` + protoSvcSecret + `"
    grant_types: [client_credentials]
    scopes: [workflows.read]
    dpop: true
    audiences: ["https://api.example.com"]
  - id: spa
    redirect_uris: ["` + protoCallback + `"]
    grant_types: [authorization_code, refresh_token]
    scopes: [openid, profile, offline_access, workflows.read]
    token_endpoint_auth_method: none
    consent: admin
    dpop: true
  - id: web
    redirect_uris: ["` + protoCallback + `"]
    grant_types: [authorization_code, refresh_token]
    scopes: [openid, profile, offline_access, workflows.read]
    token_endpoint_auth_method: none
    consent: admin
    audiences: ["https://api.example.com", "https://erp.example.com"]
`
}

func startProtocolServer(t *testing.T, extra string) *serving {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "flowgate.yaml")
	if err := os.WriteFile(cfg, []byte(protocolConfig(extra)), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServe(t, dir, nil, "--config", cfg)
}

var protoHiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// browserLogin plays the browser: it opens authURL, signs alice in on
// the login page when it comes, and returns the last response, which is
// the redirect to the relying party (not followed) or the form_post page.
func browserLogin(t *testing.T, authURL string) *http.Response {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), protoCallback) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Request.URL.Path != "/login" {
		return resp
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := url.Values{}
	for _, m := range protoHiddenRE.FindAllStringSubmatch(string(b), -1) {
		form.Set(m[1], m[2])
	}
	form.Set("username", "alice")
	form.Set("password", protoAlicePassword)
	resp, err = c.PostForm(resp.Request.URL.Scheme+"://"+resp.Request.URL.Host+"/login", form)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// callbackURL is where the relying party was sent.
func callbackURL(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, protoCallback) {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("want a redirect to the relying party, got %d %q: %.300s", resp.StatusCode, loc, b)
	}
	return loc
}

func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// wantRefused checks an answer of the driver's raw command.
func wantRefused(t *testing.T, what string, v map[string]any, status float64, code string) {
	t.Helper()
	body, _ := v["body"].(string)
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	if v["status"] != status || e.Error != code {
		t.Fatalf("%s: got %v %q (%v), want %v %s", what, v["status"], e.Error, v["www_authenticate"], status, code)
	}
}

// openid-client as a DPoP client: client credentials, the code flow and
// refresh of a public client, and /api/v1/me with the DPoP scheme; every
// proof that RFC 9449 says to refuse is refused with its error.
func TestDPoPWithOpenIDClient(t *testing.T) {
	s := startProtocolServer(t, "")
	rp := rpclient.Start(t)
	me := s.base + "/api/v1/me"

	d := rp.MustDo(t, map[string]any{"op": "discover", "issuer": s.base, "client_id": "svc", "client_secret": protoSvcSecret})
	if algs, _ := d["dpop_signing_alg_values_supported"].([]any); len(algs) == 0 {
		t.Fatalf("discovery lists no dpop_signing_alg_values_supported: %v", d)
	}

	t.Run("client credentials", func(t *testing.T) {
		// A dpop: true client without a proof is refused, never given a
		// bearer token.
		v := rp.Do(t, map[string]any{"op": "cc", "scope": "workflows.read"})
		if v["ok"] != false || v["code"] != "invalid_dpop_proof" {
			t.Fatalf("without a proof: %v", v)
		}
		v = rp.MustDo(t, map[string]any{"op": "cc", "scope": "workflows.read", "dpop": "a"})
		at, _ := v["access_token"].(string)
		cnf, _ := jwtClaims(t, at)["cnf"].(map[string]any)
		if !isDPoP(v["token_type"]) || cnf["jkt"] == nil {
			t.Fatalf("token_type %v, cnf %v; want DPoP and cnf.jkt", v["token_type"], cnf)
		}
		r := rp.MustDo(t, map[string]any{"op": "resource", "url": me, "access_token": at, "dpop": "a"})
		if r["status"] != 200.0 || !strings.Contains(r["body"].(string), `"client:svc"`) {
			t.Fatalf("/api/v1/me with DPoP: %v", r)
		}
		// The bound token as a bearer token: 401.
		r = rp.MustDo(t, map[string]any{"op": "raw", "url": me, "method": "GET", "headers": map[string]string{"Authorization": "Bearer " + at}})
		wantRefused(t, "bound token as Bearer", r, 401, "invalid_token")
		// The same token with another key's proof.
		r = rp.MustDo(t, map[string]any{"op": "resource", "url": me, "access_token": at, "dpop": "b"})
		if r["status"] != 401.0 || !strings.Contains(r["www_authenticate"].(string), "invalid_dpop_proof") {
			t.Fatalf("proof made with another key: %v", r)
		}
	})

	t.Run("refused proofs", func(t *testing.T) {
		v := rp.MustDo(t, map[string]any{"op": "cc", "scope": "workflows.read", "dpop": "a"})
		at := v["access_token"].(string)
		auth := map[string]string{"Authorization": "DPoP " + at}
		proof := func(p map[string]any) map[string]any {
			base := map[string]any{"key": "a", "htm": "GET", "htu": me, "ath_of": at}
			for k, v := range p {
				base[k] = v
			}
			return rp.MustDo(t, map[string]any{"op": "raw", "url": me, "method": "GET", "headers": auth, "proof": base})
		}
		if r := proof(nil); r["status"] != 200.0 {
			t.Fatalf("a good proof made with jose: %v", r)
		}
		r := rp.MustDo(t, map[string]any{"op": "raw", "url": me, "method": "GET", "headers": auth, "replay": true})
		wantRefused(t, "replayed proof", r, 401, "invalid_dpop_proof")
		wantRefused(t, "wrong htu", proof(map[string]any{"htu": s.base + "/api/v1/workflows"}), 401, "invalid_dpop_proof")
		wantRefused(t, "wrong htm", proof(map[string]any{"htm": "POST"}), 401, "invalid_dpop_proof")
		wantRefused(t, "missing ath", proof(map[string]any{"ath_of": ""}), 401, "invalid_dpop_proof")
		wantRefused(t, "ath of another token", proof(map[string]any{"ath_of": at + "x"}), 401, "invalid_dpop_proof")
		wantRefused(t, "key mismatch", proof(map[string]any{"key": "b"}), 401, "invalid_dpop_proof")
		wantRefused(t, "proof too old", proof(map[string]any{"iat_offset": -120}), 401, "invalid_dpop_proof")
		wantRefused(t, "proof from the future", proof(map[string]any{"iat_offset": 120}), 401, "invalid_dpop_proof")
		wantRefused(t, "typ not dpop+jwt", proof(map[string]any{"typ": "JWT"}), 401, "invalid_dpop_proof")
		if r := proof(nil); r["status"] != 200.0 {
			t.Fatalf("a good proof after the refusals: %v", r)
		}

		// At the token endpoint: the replay of a proof that got a token.
		tokenURL := s.base + "/oauth2/token"
		basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:"+protoSvcSecret))
		hdr := map[string]string{"Authorization": basic, "Content-Type": "application/x-www-form-urlencoded"}
		r = rp.MustDo(t, map[string]any{"op": "raw", "url": tokenURL, "method": "POST", "headers": hdr, "body": "grant_type=client_credentials",
			"proof": map[string]any{"key": "a", "htm": "POST", "htu": tokenURL}})
		if r["status"] != 200.0 || !strings.Contains(r["body"].(string), `"token_type":"DPoP"`) {
			t.Fatalf("token with a jose proof: %v", r)
		}
		r = rp.MustDo(t, map[string]any{"op": "raw", "url": tokenURL, "method": "POST", "headers": hdr, "body": "grant_type=client_credentials", "replay": true})
		wantRefused(t, "replayed proof at the token endpoint", r, 400, "invalid_dpop_proof")
		r = rp.MustDo(t, map[string]any{"op": "raw", "url": tokenURL, "method": "POST", "headers": hdr, "body": "grant_type=client_credentials",
			"proof": map[string]any{"key": "a", "htm": "POST", "htu": s.base + "/oauth2/revoke"}})
		wantRefused(t, "proof for another endpoint", r, 400, "invalid_dpop_proof")
	})

	t.Run("public client code flow and refresh", func(t *testing.T) {
		rp := rpclient.Start(t)
		rp.MustDo(t, map[string]any{"op": "discover", "issuer": s.base, "client_id": "spa"})
		u := rp.MustDo(t, map[string]any{"op": "authurl", "redirect_uri": protoCallback, "scope": "openid profile offline_access workflows.read"})
		cb := callbackURL(t, browserLogin(t, u["url"].(string)))
		tok := rp.MustDo(t, map[string]any{"op": "code", "url": cb, "dpop": "a"})
		at, _ := tok["access_token"].(string)
		rt, _ := tok["refresh_token"].(string)
		if !isDPoP(tok["token_type"]) || rt == "" || jwtClaims(t, at)["cnf"] == nil {
			t.Fatalf("code exchange: %v", tok)
		}
		r := rp.MustDo(t, map[string]any{"op": "resource", "url": me, "access_token": at, "dpop": "a"})
		if r["status"] != 200.0 || !strings.Contains(r["body"].(string), `"user:alice"`) {
			t.Fatalf("/api/v1/me with DPoP: %v", r)
		}
		// userinfo takes the bound token with the DPoP scheme, not as Bearer.
		if u := rp.MustDo(t, map[string]any{"op": "userinfo", "access_token": at, "sub": "alice", "dpop": "a"}); u["sub"] != "alice" {
			t.Fatalf("userinfo with DPoP: %v", u)
		}
		r = rp.MustDo(t, map[string]any{"op": "raw", "url": s.base + "/oauth2/userinfo", "method": "GET", "headers": map[string]string{"Authorization": "Bearer " + at}})
		if r["status"] != 401.0 || !strings.Contains(r["www_authenticate"].(string), "invalid_token") {
			t.Fatalf("userinfo with the bound token as Bearer: %v", r)
		}
		r = rp.MustDo(t, map[string]any{"op": "raw", "url": s.base + "/oauth2/userinfo", "method": "GET", "headers": map[string]string{"Authorization": "DPoP " + at},
			"proof": map[string]any{"key": "b", "htm": "GET", "htu": s.base + "/oauth2/userinfo", "ath_of": at}})
		if r["status"] != 401.0 || !strings.Contains(r["www_authenticate"].(string), "invalid_dpop_proof") {
			t.Fatalf("userinfo with another key's proof: %v", r)
		}
		// The refresh token is bound to key a: another key and no key are
		// refused, and the token stays usable with key a.
		v := rp.Do(t, map[string]any{"op": "refresh", "refresh_token": rt, "dpop": "b"})
		if v["ok"] != false || v["code"] != "invalid_grant" {
			t.Fatalf("refresh with another key: %v", v)
		}
		v = rp.Do(t, map[string]any{"op": "refresh", "refresh_token": rt})
		if v["ok"] != false || v["code"] != "invalid_dpop_proof" {
			t.Fatalf("refresh without a proof: %v", v)
		}
		v = rp.MustDo(t, map[string]any{"op": "refresh", "refresh_token": rt, "dpop": "a"})
		at2, _ := v["access_token"].(string)
		if !isDPoP(v["token_type"]) || at2 == at || v["refresh_token"] == rt {
			t.Fatalf("refresh with the key: %v", v)
		}
		if c1, c2 := jwtClaims(t, at)["cnf"], jwtClaims(t, at2)["cnf"]; !jsonEqual(c1, c2) {
			t.Fatalf("refreshed token bound to %v, want %v", c2, c1)
		}
	})

	t.Run("dpop_jkt binds the code", func(t *testing.T) {
		rp := rpclient.Start(t)
		rp.MustDo(t, map[string]any{"op": "discover", "issuer": s.base, "client_id": "web"})
		code := func() string {
			u := rp.MustDo(t, map[string]any{"op": "authurl", "redirect_uri": protoCallback, "scope": "openid workflows.read", "dpop_jkt": "a"})
			return callbackURL(t, browserLogin(t, u["url"].(string)))
		}
		// A code bound to key a, stolen and exchanged with another key or
		// with none, gives nothing.
		if v := rp.Do(t, map[string]any{"op": "code", "url": code(), "dpop": "b"}); v["ok"] != false || v["code"] != "invalid_grant" {
			t.Fatalf("a dpop_jkt code exchanged with another key: %v", v)
		}
		if v := rp.Do(t, map[string]any{"op": "code", "url": code()}); v["ok"] != false || v["code"] != "invalid_grant" {
			t.Fatalf("a dpop_jkt code exchanged without a proof: %v", v)
		}
		tok := rp.MustDo(t, map[string]any{"op": "code", "url": code(), "dpop": "a"})
		if !isDPoP(tok["token_type"]) || jwtClaims(t, tok["access_token"].(string))["cnf"] == nil {
			t.Fatalf("a dpop_jkt code exchanged with its key: %v", tok)
		}
		web := rpclient.Start(t)
		web.MustDo(t, map[string]any{"op": "discover", "issuer": s.base, "client_id": "web"})
		u := web.MustDo(t, map[string]any{"op": "authurl", "redirect_uri": protoCallback, "scope": "openid"})
		bad := strings.Replace(u["url"].(string), "scope=", "dpop_jkt=not-a-thumbprint&scope=", 1)
		if cb, _ := url.Parse(callbackURL(t, browserLogin(t, bad))); cb.Query().Get("error") != "invalid_request" {
			t.Fatalf("a malformed dpop_jkt: %s", cb)
		}
	})
}

// isDPoP reports whether a token_type as openid-client reports it (in
// lower case) is DPoP.
func isDPoP(tt any) bool { s, _ := tt.(string); return strings.EqualFold(s, "DPoP") }

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// With auth.dpop_nonce a proof without the server's nonce is refused with
// use_dpop_nonce and a DPoP-Nonce header, at the token endpoint and at the
// APIs; openid-client retries with the nonce and succeeds.
func TestDPoPNonceWithOpenIDClient(t *testing.T) {
	s := startProtocolServer(t, "  dpop_nonce: true\n")
	rp := rpclient.Start(t)
	me := s.base + "/api/v1/me"
	tokenURL := s.base + "/oauth2/token"
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:"+protoSvcSecret))
	hdr := map[string]string{"Authorization": basic, "Content-Type": "application/x-www-form-urlencoded"}

	r := rp.MustDo(t, map[string]any{"op": "raw", "url": tokenURL, "method": "POST", "headers": hdr, "body": "grant_type=client_credentials",
		"proof": map[string]any{"key": "a", "htm": "POST", "htu": tokenURL}})
	wantRefused(t, "token request without a nonce", r, 400, "use_dpop_nonce")
	nonce, _ := r["dpop_nonce"].(string)
	if nonce == "" {
		t.Fatalf("use_dpop_nonce without a DPoP-Nonce header: %v", r)
	}
	r = rp.MustDo(t, map[string]any{"op": "raw", "url": tokenURL, "method": "POST", "headers": hdr, "body": "grant_type=client_credentials",
		"proof": map[string]any{"key": "a", "htm": "POST", "htu": tokenURL, "nonce": "not-a-nonce"}})
	wantRefused(t, "token request with a made-up nonce", r, 400, "use_dpop_nonce")
	r = rp.MustDo(t, map[string]any{"op": "raw", "url": tokenURL, "method": "POST", "headers": hdr, "body": "grant_type=client_credentials",
		"proof": map[string]any{"key": "a", "htm": "POST", "htu": tokenURL, "nonce": nonce}})
	if r["status"] != 200.0 {
		t.Fatalf("token request with the nonce: %v", r)
	}

	rp.MustDo(t, map[string]any{"op": "discover", "issuer": s.base, "client_id": "svc", "client_secret": protoSvcSecret})
	v := rp.MustDo(t, map[string]any{"op": "cc", "scope": "workflows.read", "dpop": "b"})
	at := v["access_token"].(string)
	r = rp.MustDo(t, map[string]any{"op": "raw", "url": me, "method": "GET", "headers": map[string]string{"Authorization": "DPoP " + at},
		"proof": map[string]any{"key": "b", "htm": "GET", "htu": me, "ath_of": at}})
	wantRefused(t, "API call without a nonce", r, 401, "use_dpop_nonce")
	if r["dpop_nonce"] == nil || !strings.Contains(r["www_authenticate"].(string), `error="use_dpop_nonce"`) {
		t.Fatalf("use_dpop_nonce at the API: %v", r)
	}
	r = rp.MustDo(t, map[string]any{"op": "resource", "url": me, "access_token": at, "dpop": "b"})
	if r["status"] != 200.0 {
		t.Fatalf("openid-client with the nonce: %v", r)
	}
}

// Resource indicators: a registered audience becomes aud, an unknown one
// is invalid_target at the token and authorize endpoints, and a token for
// another resource is not accepted by Flowgate's APIs.
func TestResourceIndicatorsWithOpenIDClient(t *testing.T) {
	s := startProtocolServer(t, "")
	rp := rpclient.Start(t)
	rp.MustDo(t, map[string]any{"op": "discover", "issuer": s.base, "client_id": "svc", "client_secret": protoSvcSecret})
	v := rp.MustDo(t, map[string]any{"op": "cc", "scope": "workflows.read", "dpop": "a", "resource": "https://api.example.com"})
	at := v["access_token"].(string)
	if aud := jwtClaims(t, at)["aud"]; aud != "https://api.example.com" {
		t.Fatalf("aud = %v, want the resource", aud)
	}
	r := rp.MustDo(t, map[string]any{"op": "resource", "url": s.base + "/api/v1/me", "access_token": at, "dpop": "a"})
	if r["status"] != 401.0 || !strings.Contains(r["www_authenticate"].(string), "wrong audience") {
		t.Fatalf("a token for another resource at Flowgate's API: %v", r)
	}
	v = rp.Do(t, map[string]any{"op": "cc", "scope": "workflows.read", "dpop": "a", "resource": "https://other.example.com"})
	if v["ok"] != false || v["code"] != "invalid_target" {
		t.Fatalf("unregistered resource: %v", v)
	}

	web := rpclient.Start(t)
	web.MustDo(t, map[string]any{"op": "discover", "issuer": s.base, "client_id": "web"})
	u := web.MustDo(t, map[string]any{"op": "authurl", "redirect_uri": protoCallback, "scope": "openid workflows.read", "resource": "https://other.example.com"})
	cb, _ := url.Parse(callbackURL(t, browserLogin(t, u["url"].(string))))
	if cb.Query().Get("error") != "invalid_target" {
		t.Fatalf("authorize with an unregistered resource: %s", cb)
	}
	u = web.MustDo(t, map[string]any{"op": "authurl", "redirect_uri": protoCallback, "scope": "openid workflows.read offline_access", "resource": "https://api.example.com"})
	tok := web.MustDo(t, map[string]any{"op": "code", "url": callbackURL(t, browserLogin(t, u["url"].(string)))})
	if aud := jwtClaims(t, tok["access_token"].(string))["aud"]; aud != "https://api.example.com" || !strings.EqualFold(tok["token_type"].(string), "Bearer") {
		t.Fatalf("code flow with a resource: aud %v, token_type %v", aud, tok["token_type"])
	}
	// A refresh keeps the grant's resource, and may not ask for another
	// the client is registered for but the user did not grant; that
	// refusal leaves the refresh token usable.
	rt, _ := tok["refresh_token"].(string)
	if rt == "" {
		t.Fatalf("no refresh token: %v", tok)
	}
	v = web.Do(t, map[string]any{"op": "refresh", "refresh_token": rt, "resource": "https://erp.example.com"})
	if v["ok"] != false || v["code"] != "invalid_target" {
		t.Fatalf("refresh asking for a resource outside the grant: %v", v)
	}
	ref := web.MustDo(t, map[string]any{"op": "refresh", "refresh_token": rt})
	if aud := jwtClaims(t, ref["access_token"].(string))["aud"]; aud != "https://api.example.com" {
		t.Fatalf("refreshed aud %v, want the grant's resource", aud)
	}
	ref = web.MustDo(t, map[string]any{"op": "refresh", "refresh_token": ref["refresh_token"].(string), "resource": "https://api.example.com"})
	if aud := jwtClaims(t, ref["access_token"].(string))["aud"]; aud != "https://api.example.com" {
		t.Fatalf("refreshed for the grant's resource: aud %v", aud)
	}
}

// response_mode fragment and form_post, read by openid-client as a browser
// app and a server would; other modes are refused at the redirect URI.
func TestResponseModesWithOpenIDClient(t *testing.T) {
	s := startProtocolServer(t, "")
	rp := rpclient.Start(t)
	d := rp.MustDo(t, map[string]any{"op": "discover", "issuer": s.base, "client_id": "web"})
	if !jsonEqual(d["response_modes_supported"], []string{"query", "fragment", "form_post"}) {
		t.Fatalf("response_modes_supported = %v", d["response_modes_supported"])
	}

	u := rp.MustDo(t, map[string]any{"op": "authurl", "redirect_uri": protoCallback, "scope": "openid", "response_mode": "fragment"})
	cb := callbackURL(t, browserLogin(t, u["url"].(string)))
	if pu, _ := url.Parse(cb); pu.RawQuery != "" || !strings.Contains(pu.Fragment, "code=") {
		t.Fatalf("fragment response went to %s", cb)
	}
	if tok := rp.MustDo(t, map[string]any{"op": "code", "url": cb}); tok["access_token"] == nil {
		t.Fatalf("fragment: %v", tok)
	}

	u = rp.MustDo(t, map[string]any{"op": "authurl", "redirect_uri": protoCallback, "scope": "openid", "response_mode": "form_post"})
	resp := browserLogin(t, u["url"].(string))
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") ||
		!strings.Contains(csp, "form-action http://127.0.0.1:9") {
		t.Fatalf("form_post page: %d, CSP %q", resp.StatusCode, csp)
	}
	if !strings.Contains(string(page), `<button type="submit">`) || !strings.Contains(string(page), `action="`+protoCallback+`"`) ||
		strings.Contains(string(page), "<script>") {
		t.Fatalf("form_post page must post to the redirect URI with a visible button and no inline script: %s", page)
	}
	fields := map[string]string{}
	for _, m := range protoHiddenRE.FindAllStringSubmatch(string(page), -1) {
		fields[m[1]] = m[2]
	}
	if fields["code"] == "" || fields["iss"] != s.base {
		t.Fatalf("form_post fields %v", fields)
	}
	tok := rp.MustDo(t, map[string]any{"op": "code", "form": map[string]any{"action": protoCallback, "fields": fields}})
	if tok["access_token"] == nil {
		t.Fatalf("form_post: %v", tok)
	}
	js, err := http.Get(s.base + "/assets/form-post.js")
	if err != nil {
		t.Fatal(err)
	}
	js.Body.Close()
	if js.StatusCode != 200 || !strings.HasPrefix(js.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("form_post script: %d %s", js.StatusCode, js.Header.Get("Content-Type"))
	}

	u = rp.MustDo(t, map[string]any{"op": "authurl", "redirect_uri": protoCallback, "scope": "openid", "response_mode": "jwt"})
	pu, _ := url.Parse(callbackURL(t, browserLogin(t, u["url"].(string))))
	if pu.Query().Get("error") != "invalid_request" || !strings.Contains(pu.Query().Get("error_description"), "response_mode") {
		t.Fatalf("unsupported response_mode: %s", pu)
	}
}

// CORS: an origin a client lists gets answers (preflight included) on the
// provider's endpoints and the APIs, never with credentials or "*"; any
// other origin gets no CORS headers.
func TestCORSForBrowserClients(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "flowgate.yaml")
	conf := strings.Replace(protocolConfig(""), "    dpop: true\n  - id: web", "    dpop: true\n    allowed_origins: [\"http://127.0.0.1:9000\"]\n  - id: web", 1)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir, nil, "--config", cfg)

	do := func(method, path, origin string, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, s.base+path, nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	preflight := map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, dpop"}
	for _, path := range []string{"/.well-known/openid-configuration", "/oauth2/jwks", "/oauth2/token", "/oauth2/revoke", "/oauth2/userinfo", "/api/v1/me", "/api/v1/workflows"} {
		r := do(http.MethodOptions, path, "http://127.0.0.1:9000", preflight)
		if r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:9000" ||
			!strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "DPoP") || r.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Fatalf("preflight %s from a listed origin: %d %v", path, r.StatusCode, r.Header)
		}
		r = do(http.MethodOptions, path, "http://127.0.0.1:9001", preflight)
		if r.StatusCode != 403 || r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("preflight %s from an unlisted origin: %d %v", path, r.StatusCode, r.Header)
		}
	}
	r := do(http.MethodGet, "/.well-known/openid-configuration", "http://127.0.0.1:9000", nil)
	if r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:9000" || !strings.Contains(r.Header.Get("Vary"), "Origin") {
		t.Fatalf("discovery from a listed origin: %d %v", r.StatusCode, r.Header)
	}
	r = do(http.MethodGet, "/api/v1/me", "http://127.0.0.1:9000", nil)
	if r.StatusCode != 401 || r.Header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:9000" ||
		!strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
		t.Fatalf("API from a listed origin: %d %v", r.StatusCode, r.Header)
	}
	r = do(http.MethodGet, "/.well-known/openid-configuration", "http://127.0.0.1:9001", nil)
	if r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("discovery from an unlisted origin: %d %v", r.StatusCode, r.Header)
	}
	// Pages are not for other origins.
	if r := do(http.MethodOptions, "/login", "http://127.0.0.1:9000", preflight); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight /login: %d %v", r.StatusCode, r.Header)
	}
}

// Two servers on one PostgreSQL database: a DPoP proof accepted by one is
// refused by the other (the replay table is shared), a nonce handed out by
// one is good at the other, and a token endpoint proof made for the public
// URL is accepted by both.
func TestDPoPReplayAcrossServers(t *testing.T) {
	dsn := pgtest.DSN(t)
	env := []string{"FLOWGATE_SECRET_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "FLOWGATE_DATABASE=" + dsn}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "flowgate.yaml")
	if err := os.WriteFile(cfg, []byte(protocolConfig("  dpop_nonce: true\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	// One public URL for both, as behind a load balancer: proofs name it.
	addrA := freeAddr(t)
	public := "http://" + addrA
	a := startServeAt(t, dir, addrA, env, "--config", cfg, "--public-url", public)
	b := startServe(t, dir, env, "--config", cfg, "--public-url", public)
	rp := rpclient.Start(t)
	tokenURL := public + "/oauth2/token"
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:"+protoSvcSecret))
	hdr := map[string]string{"Authorization": basic, "Content-Type": "application/x-www-form-urlencoded"}
	post := func(base string, p map[string]any, replay bool) map[string]any {
		cmd := map[string]any{"op": "raw", "url": base + "/oauth2/token", "method": "POST", "headers": hdr, "body": "grant_type=client_credentials"}
		if replay {
			cmd["replay"] = true
		} else {
			cmd["proof"] = p
		}
		return rp.MustDo(t, cmd)
	}
	r := post(a.base, map[string]any{"key": "a", "htm": "POST", "htu": tokenURL}, false)
	nonce, _ := r["dpop_nonce"].(string)
	wantRefused(t, "server A without a nonce", r, 400, "use_dpop_nonce")
	// A's nonce, used at B.
	r = post(b.base, map[string]any{"key": "a", "htm": "POST", "htu": tokenURL, "nonce": nonce}, false)
	if r["status"] != 200.0 {
		t.Fatalf("server B with server A's nonce: %v", r)
	}
	// The same proof again, at A.
	wantRefused(t, "proof accepted by B, replayed to A", post(a.base, nil, true), 400, "invalid_dpop_proof")
}
