// Package dpop checks and makes DPoP proofs (RFC 9449, docs/security.md):
// the token endpoint and the APIs check the proofs clients send, and the
// outbound OAuth client makes them for servers that want them. Parsing,
// signature checks, signing and key thumbprints are go-jose's; this package
// applies the RFC's rules on top (typ, algorithms, htm/htu, iat window,
// single-use jti, ath, server nonces).
package dpop

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/flowgate/flowgate/internal/store"
)

// Window is how far a proof's iat may be from the server's clock, either
// way.
const Window = 60 * time.Second

// NonceLife is how long a server nonce is accepted after it is handed out
// (at least; at most twice as long).
const NonceLife = 5 * time.Minute

// Error codes of RFC 9449.
const (
	CodeInvalidProof = "invalid_dpop_proof"
	CodeUseNonce     = "use_dpop_nonce"
)

// Header is the request and response header of a proof.
const Header = "DPoP"

// NonceHeader carries the server's nonce (RFC 9449 §8).
const NonceHeader = "DPoP-Nonce"

// Algs are the proof signature algorithms accepted: asymmetric only.
func Algs() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{
		jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512,
		jose.PS256, jose.PS384, jose.PS512, jose.EdDSA,
	}
}

// AlgNames are Algs as strings, for discovery metadata.
func AlgNames() []string {
	algs := Algs()
	out := make([]string, len(algs))
	for i, a := range algs {
		out[i] = string(a)
	}
	return out
}

// Error is a refused proof: Code is invalid_dpop_proof or use_dpop_nonce,
// Nonce the fresh nonce to send back with use_dpop_nonce.
type Error struct {
	Code        string
	Description string
	Nonce       string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func invalid(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidProof, Description: fmt.Sprintf(format, args...)}
}

// JTIs records the jtis of accepted proofs; store.DPoPJTIs is one.
type JTIs interface {
	UseDPoPJTI(ctx context.Context, jkt, jti string, now, expiresAt time.Time) error
}

// Nonces makes and checks server nonces without keeping state: a nonce is
// the time window it was made in and a MAC of it, so every server with
// the same key accepts every other's.
type Nonces struct {
	key []byte
	now func() time.Time
}

// NewNonces makes nonces with key (at least 32 bytes from a secret source:
// the key ring's MAC subkey); now nil means time.Now.
func NewNonces(key []byte, now func() time.Time) *Nonces {
	if now == nil {
		now = time.Now
	}
	return &Nonces{key: key, now: now}
}

func (n *Nonces) make(window int64) string {
	b := make([]byte, 8, 8+16)
	binary.BigEndian.PutUint64(b, uint64(window))
	m := hmac.New(sha256.New, n.key)
	m.Write([]byte("dpop-nonce"))
	m.Write(b)
	b = append(b, m.Sum(nil)[:16]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (n *Nonces) window() int64 { return n.now().Unix() / int64(NonceLife/time.Second) }

// Current is the nonce to hand out now.
func (n *Nonces) Current() string { return n.make(n.window()) }

// Valid reports whether nonce was handed out in this window or the
// previous one.
func (n *Nonces) Valid(nonce string) bool {
	w := n.window()
	for _, cand := range []int64{w, w - 1} {
		if hmac.Equal([]byte(nonce), []byte(n.make(cand))) {
			return true
		}
	}
	return false
}

// Verifier checks proofs.
type Verifier struct {
	// JTIs refuses a replayed jti across servers; required.
	JTIs JTIs
	// Nonces, when set, makes every proof carry a current server nonce.
	Nonces *Nonces
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Proof is an accepted proof.
type Proof struct {
	// JKT is the base64url SHA-256 thumbprint (RFC 7638) of the proof's
	// key: what cnf.jkt holds.
	JKT string
	JTI string
}

type claims struct {
	JTI   string   `json:"jti"`
	HTM   string   `json:"htm"`
	HTU   string   `json:"htu"`
	IAT   *float64 `json:"iat"`
	ATH   string   `json:"ath,omitempty"`
	Nonce string   `json:"nonce,omitempty"`
}

// Request is what a proof must match.
type Request struct {
	// Method is the HTTP method, URL the request's URL as the client
	// addressed it (scheme, host, path; query and fragment are ignored).
	Method, URL string
	// AccessToken, when set, must be hashed into the proof's ath.
	AccessToken string
}

// Verify checks the DPoP header values of a request (exactly one proof)
// against req, and records its jti. Every refusal is an *Error.
func (v *Verifier) Verify(ctx context.Context, values []string, req Request) (*Proof, error) {
	switch len(values) {
	case 0:
		return nil, invalid("a DPoP proof is required")
	case 1:
	default:
		return nil, invalid("more than one DPoP header")
	}
	raw := strings.TrimSpace(values[0])
	if len(raw) > 8<<10 {
		return nil, invalid("DPoP proof is too large")
	}
	jws, err := jose.ParseSignedCompact(raw, Algs())
	if err != nil {
		return nil, invalid("DPoP proof is not a JWS with an accepted algorithm")
	}
	if len(jws.Signatures) != 1 {
		return nil, invalid("DPoP proof must have one signature")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "dpop+jwt" {
		return nil, invalid("DPoP proof typ must be dpop+jwt")
	}
	jwk := h.JSONWebKey
	if jwk == nil || !jwk.Valid() || !jwk.IsPublic() {
		return nil, invalid("DPoP proof header must carry a public jwk")
	}
	if _, symmetric := jwk.Key.([]byte); symmetric {
		return nil, invalid("DPoP proof key must be asymmetric")
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return nil, invalid("DPoP proof signature does not verify with its jwk")
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, invalid("DPoP proof claims are not a JSON object")
	}
	if c.JTI == "" || len(c.JTI) > 256 {
		return nil, invalid("DPoP proof has no usable jti")
	}
	if c.HTM != req.Method {
		return nil, invalid("DPoP proof htm does not match the request method")
	}
	if !sameURL(c.HTU, req.URL) {
		return nil, invalid("DPoP proof htu does not match the request URL")
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	if c.IAT == nil {
		return nil, invalid("DPoP proof has no iat")
	}
	iat := time.Unix(int64(*c.IAT), 0)
	if iat.Before(now.Add(-Window)) || iat.After(now.Add(Window)) {
		return nil, invalid("DPoP proof iat is not within %d s of the server's time", int(Window/time.Second))
	}
	if req.AccessToken != "" {
		sum := sha256.Sum256([]byte(req.AccessToken))
		if c.ATH == "" {
			return nil, invalid("DPoP proof has no ath (the access token's hash)")
		}
		if !hmac.Equal([]byte(c.ATH), []byte(base64.RawURLEncoding.EncodeToString(sum[:]))) {
			return nil, invalid("DPoP proof ath does not match the access token")
		}
	}
	if v.Nonces != nil && !v.Nonces.Valid(c.Nonce) {
		desc := "DPoP proof must carry the server's nonce"
		if c.Nonce != "" {
			desc = "DPoP proof nonce is not current"
		}
		return nil, &Error{Code: CodeUseNonce, Description: desc, Nonce: v.Nonces.Current()}
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, invalid("DPoP proof jwk has no thumbprint")
	}
	jkt := base64.RawURLEncoding.EncodeToString(tp)
	// After every other check, so a refused proof does not burn its jti.
	// The row lives until no proof with this iat is accepted any more.
	if err := v.JTIs.UseDPoPJTI(ctx, jkt, c.JTI, now, iat.Add(Window+time.Second)); err != nil {
		if errors.Is(err, store.ErrReused) {
			return nil, invalid("DPoP proof jti was already used")
		}
		return nil, fmt.Errorf("dpop: recording the proof's jti: %w", err)
	}
	return &Proof{JKT: jkt, JTI: c.JTI}, nil
}

// sameURL compares two URLs as RFC 9449 §4.3 says: without query and
// fragment, after syntax-based normalisation (case of scheme and host,
// default ports).
func sameURL(a, b string) bool {
	na, ok1 := normURL(a)
	nb, ok2 := normURL(b)
	return ok1 && ok2 && na == nb
}

func normURL(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "HTTP" && u.Scheme != "HTTPS") {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if port != "" {
		host += ":" + port
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, true
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of a public key, base64url.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("dpop: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}
