package resource

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzBearerToken sends arbitrary Authorization headers to an API route.
// Seeded with one valid token, it checks what matters for an attacker: a
// request is let through only with exactly that token, in its one signed
// spelling (no re-encoding, no second form of the signature), and
// everything else is refused with 400 or 401, never a panic or a 5xx.
func FuzzBearerToken(f *testing.F) {
	key := newECKey(f, "own-1")
	s := newOwnSetup(f, key)
	v, err := newTestValidator(f.Context(), s.own, nil, Options{Logger: quietLogger(f)})
	if err != nil {
		f.Fatal(err)
	}
	h := apiServer(v)
	c := claimsFor(ownIss, ownIss, "alice")
	c["exp"] = time.Now().Add(24 * time.Hour).Unix()
	c["scope"] = "workflows.read"
	valid := key.sign(f, c)
	for _, s := range []string{
		"Bearer " + valid, "bearer  " + valid + " ", "DPoP " + valid, "Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer a.b.c",
		"Bearer " + valid[:len(valid)-1], "Bearer " + valid + "=", "Bearer " + strings.ReplaceAll(valid, ".", ".."),
	} {
		f.Add(s)
	}
	// The signature's last base64url character carries bits that no
	// decoder needs: every other value of them is a second spelling of
	// the same signature, which must be refused.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, valid[len(valid)-1])
	for low := 1; low < 16; low++ {
		f.Add("Bearer " + valid[:len(valid)-1] + string(alphabet[last&^15|low]))
	}
	f.Fuzz(func(t *testing.T, authz string) {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
		req.Header.Set("Authorization", authz)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			scheme, tok, _ := strings.Cut(strings.TrimSpace(authz), " ")
			if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) != valid {
				t.Fatalf("accepted %q, which is not the token that was signed", authz)
			}
		case http.StatusBadRequest, http.StatusUnauthorized:
		default:
			t.Fatalf("%q: status %d", authz, rec.Code)
		}
	})
}
