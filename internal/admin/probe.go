package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/store"
)

// The "test" of a trusted issuer or an OAuth server, shared by the admin
// API and the management site. Both go out through the HTTP client the
// caller gives, which is the egress policy's: a test reaches only what a
// flow or the token validator could.

// IssuerProbe is what ProbeIssuer found. OK says whether the issuer is
// usable; Err what is wrong when it is not.
type IssuerProbe struct {
	OK             bool
	MetadataURL    string
	ExpectedIssuer string
	// Issuer is the issuer the metadata names; IssuerMatch whether it is
	// the configured one.
	Issuer      string
	IssuerMatch bool
	JWKSURI     string
	// Keys is how many keys the key set holds; Algorithms their distinct
	// alg values (a key without one is listed by its kty).
	Keys       int
	Algorithms []string
	Err        string
}

// ProbeIssuer reads the issuer's metadata and key set the way the token
// validator will, and reports what it found.
func ProbeIssuer(ctx context.Context, client *http.Client, t store.TrustedIssuer) IssuerProbe {
	res := IssuerProbe{MetadataURL: t.MetadataURL, ExpectedIssuer: t.Issuer}
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := getJSON(ctx, client, t.MetadataURL, &meta); err != nil {
		res.Err = "metadata: " + err.Error()
		return res
	}
	res.Issuer, res.JWKSURI = meta.Issuer, meta.JWKSURI
	res.IssuerMatch = meta.Issuer == t.Issuer
	if meta.JWKSURI == "" {
		res.Err = "metadata has no jwks_uri"
		return res
	}
	var set struct {
		Keys []struct {
			Alg string `json:"alg"`
			Kty string `json:"kty"`
		} `json:"keys"`
	}
	if err := getJSON(ctx, client, meta.JWKSURI, &set); err != nil {
		res.Err = "jwks: " + err.Error()
		return res
	}
	res.Keys = len(set.Keys)
	for _, k := range set.Keys {
		a := k.Alg
		if a == "" {
			a = k.Kty + " (no alg)"
		}
		if !slices.Contains(res.Algorithms, a) {
			res.Algorithms = append(res.Algorithms, a)
		}
	}
	switch {
	case !res.IssuerMatch:
		res.Err = fmt.Sprintf("metadata issuer %q is not the configured issuer %q; tokens would be refused", meta.Issuer, t.Issuer)
	case res.Keys == 0:
		res.Err = "the key set has no keys"
	default:
		res.OK = true
	}
	return res
}

// maxFetch bounds a metadata or key set document.
const maxFetch = 1 << 20

// getJSON fetches url and decodes its JSON body into dst. Errors name the
// status or the decoding problem, never a response body.
func getJSON(ctx context.Context, client *http.Client, url string, dst any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("bad URL: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s answered %s", url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxFetch)).Decode(dst); err != nil {
		return fmt.Errorf("GET %s: not a JSON document: %w", url, err)
	}
	return nil
}

// OAuthServerProbe is what ProbeOAuthServer found: never the token
// itself. On success the token's type, lifetime (seconds) and granted
// scopes; on failure Err, ErrKind (connectors.Kind, as flow steps classify
// it) and ErrCode, the provider's OAuth error code when it sent one.
type OAuthServerProbe struct {
	OK            bool
	TokenEndpoint string
	TokenType     string
	ExpiresIn     int64
	Scopes        []string
	Err           string
	ErrKind       string
	ErrCode       string
}

// ProbeOAuthServer runs the client credentials grant against the server
// (with a DPoP proof made with the server's key from keys when it asks for DPoP),
// with its default scopes, and reports the outcome; the token obtained is
// dropped, never shown or kept. The request goes through
// connectors.Client, as every token request of the flows does, built from
// the entry as given rather than the vault's cache, which may hold the
// entry as it was before an edit: a test right after a change tests what
// was changed.
func ProbeOAuthServer(ctx context.Context, client *http.Client, keys connectors.DPoPKeys, o store.OAuthServer) OAuthServerProbe {
	var res OAuthServerProbe
	fail := func(err error) OAuthServerProbe {
		res.Err, res.ErrKind = err.Error(), connectors.KindOf(err).String()
		var ce *connectors.Error
		if errors.As(err, &ce) {
			res.ErrCode = ce.Code
		}
		return res
	}
	opts := connectors.Options{HTTPClient: client}
	if o.DPoP {
		// The server's own key, so the test proves what flows will send.
		var err error
		if opts.DPoPKey, err = connectors.LoadDPoPKey(ctx, keys, o.Name); err != nil {
			return fail(err)
		}
	}
	c, err := connectors.New(o, opts)
	if err != nil {
		return fail(err)
	}
	ends, err := c.Endpoints(ctx)
	if err != nil {
		return fail(err)
	}
	res.TokenEndpoint = ends.Token
	tok, err := c.ClientCredentials(ctx, nil)
	if err != nil {
		return fail(err)
	}
	res.OK, res.TokenType, res.ExpiresIn, res.Scopes = true, tok.TokenType, tok.ExpiresIn, tok.Scopes
	return res
}
