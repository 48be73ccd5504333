package connectors

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/flowgate/flowgate/internal/dpop"
)

// tokenTransport is the RoundTripper of the HTTP client oauth2 uses for
// this Client's token requests (and only those: discovery and revocation
// use the plain client). oauth2 builds the form of a refresh itself and
// takes no per-request parameters there, and a private_key_jwt assertion
// must be new for every request (its jti is single-use at most
// providers), so both are added here, on the way out:
//
//   - the server's params (resource, audience…), unless the request
//     already has that parameter;
//   - for private_key_jwt, client_assertion_type and a fresh
//     client_assertion whose aud is the URL being called (the token
//     endpoint, or the refresh endpoint when that differs).
//
// The request is cloned, never modified (the RoundTripper contract).
type tokenTransport struct {
	c    *Client
	base http.RoundTripper
}

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || (len(t.c.srv.Params) == 0 && t.c.key == nil && t.c.dpop == nil) {
		return t.base.RoundTrip(req)
	}
	var form url.Values
	if req.Body != nil {
		b, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		if form, err = url.ParseQuery(string(b)); err != nil {
			return nil, fmt.Errorf("token request body: %w", err)
		}
	} else {
		form = url.Values{}
	}
	for k, v := range t.c.srv.Params {
		if !form.Has(k) {
			form.Set(k, v)
		}
	}
	if t.c.key != nil {
		aud := *req.URL
		aud.RawQuery, aud.Fragment = "", ""
		if err := t.c.addAssertion(form, aud.String()); err != nil {
			return nil, err
		}
	}
	if t.c.dpop == nil {
		out := req.Clone(req.Context())
		setForm(out, form)
		return t.base.RoundTrip(out)
	}
	return t.withProof(req, form)
}

// withProof sends a token request with a DPoP proof (RFC 9449 §5). A
// use_dpop_nonce answer (§8) is retried once with the nonce it carries;
// every answer's DPoP-Nonce is remembered for the next request. A client
// assertion is made again for the retry: its jti is single use.
func (t *tokenTransport) withProof(req *http.Request, form url.Values) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		proof, err := t.c.dpop.Proof(http.MethodPost, req.URL.String(), "")
		if err != nil {
			return nil, err
		}
		out := req.Clone(req.Context())
		setForm(out, form)
		out.Header.Set(dpop.Header, proof)
		resp, err := t.base.RoundTrip(out)
		if err != nil {
			return nil, err
		}
		nonce := resp.Header.Get(dpop.NonceHeader)
		t.c.dpop.SetNonce(req.URL.String(), nonce)
		if attempt > 0 || nonce == "" || resp.StatusCode != http.StatusBadRequest {
			return resp, nil
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) != nil || e.Error != dpop.CodeUseNonce {
			resp.Body = io.NopCloser(bytes.NewReader(body))
			return resp, nil
		}
		if t.c.key != nil {
			aud := *req.URL
			aud.RawQuery, aud.Fragment = "", ""
			if err := t.c.addAssertion(form, aud.String()); err != nil {
				return nil, err
			}
		}
	}
}

// addAssertion adds an RFC 7523 client assertion for aud to form.
func (c *Client) addAssertion(form url.Values, aud string) error {
	now := c.now()
	claims := jwt.Claims{
		Issuer:   c.srv.ClientID,
		Subject:  c.srv.ClientID,
		Audience: jwt.Audience{aud},
		ID:       randomID(),
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(assertionLifetime)),
	}
	s, err := jwt.Signed(c.key.signer).Claims(claims).Serialize()
	if err != nil {
		return fmt.Errorf("sign client assertion: %w", err)
	}
	form.Set("client_id", c.srv.ClientID)
	form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	form.Set("client_assertion", s)
	return nil
}

// signingKey is a private_key_jwt key with its signer.
type signingKey struct {
	alg    jose.SignatureAlgorithm
	signer jose.Signer
}

// loadSigningKey reads a PEM private key (PKCS#8, PKCS#1 RSA or SEC 1 EC)
// and picks the algorithm from it: RS256 for RSA, ES256/384/512 for the
// NIST curves.
func loadSigningKey(path, kid string) (*signingKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("private_key_file: %w", err)
	}
	key, err := parsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("private_key_file %s: %w", path, err)
	}
	var alg jose.SignatureAlgorithm
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("private_key_file %s: RSA key of %d bits, want 2048 or more", path, k.N.BitLen())
		}
		alg = jose.RS256
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			alg = jose.ES256
		case elliptic.P384():
			alg = jose.ES384
		case elliptic.P521():
			alg = jose.ES512
		default:
			return nil, fmt.Errorf("private_key_file %s: unsupported EC curve", path)
		}
	default:
		return nil, fmt.Errorf("private_key_file %s: %T keys are not supported (RSA or EC)", path, key)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		return nil, fmt.Errorf("private_key_file %s: %w", path, err)
	}
	return &signingKey{alg: alg, signer: signer}, nil
}

func parsePrivateKey(pemBytes []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if strings.Contains(block.Type, "ENCRYPTED") {
		return nil, errors.New("encrypted keys are not supported")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%T is not a signing key", k)
		}
		return s, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("PEM block %q is not a PKCS#8, PKCS#1 or SEC 1 private key", block.Type)
}
