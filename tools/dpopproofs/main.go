// Command dpopproofs prepares the load script's DPoP runs: wrk cannot sign,
// and a DPoP proof is good for one request only (its jti) and one minute
// (its iat), so the proofs are made just before a run, one per request.
// With one key it gets a DPoP-bound token from the token endpoint and
// writes, one per line: token-proofs (for POST token_url), me-proofs (for
// GET me_url with that token's hash) and the token itself.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/flowgate/flowgate/internal/dpop"
)

func main() {
	tokenURL := flag.String("token-url", "", "the token endpoint")
	meURL := flag.String("me-url", "", "the API URL the token is used at")
	basic := flag.String("basic", "", "client id:secret for client_credentials")
	n := flag.Int("n", 50000, "proofs of each kind")
	dir := flag.String("dir", ".", "where to write token-proofs, me-proofs and token")
	flag.Parse()
	key, err := dpop.NewKey()
	if err != nil {
		log.Fatal(err)
	}
	p, err := dpop.NewProver(key, nil)
	if err != nil {
		log.Fatal(err)
	}
	id, secret, _ := strings.Cut(*basic, ":")
	proof, err := p.Proof(http.MethodPost, *tokenURL, "")
	if err != nil {
		log.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, *tokenURL, strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"workflows.read"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(dpop.Header, proof)
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || tok.TokenType != "DPoP" {
		log.Fatalf("token request with a proof: HTTP %d, token_type %q, %v", resp.StatusCode, tok.TokenType, err)
	}
	write := func(name string, make func() (string, error)) {
		f, err := os.Create(filepath.Join(*dir, name))
		if err != nil {
			log.Fatal(err)
		}
		w := bufio.NewWriter(f)
		for range *n {
			s, err := make()
			if err != nil {
				log.Fatal(err)
			}
			fmt.Fprintln(w, s)
		}
		if err := w.Flush(); err != nil {
			log.Fatal(err)
		}
		if err := f.Close(); err != nil {
			log.Fatal(err)
		}
	}
	write("token-proofs", func() (string, error) { return p.Proof(http.MethodPost, *tokenURL, "") })
	write("me-proofs", func() (string, error) { return p.Proof(http.MethodGet, *meURL, tok.AccessToken) })
	if err := os.WriteFile(filepath.Join(*dir, "token"), []byte(tok.AccessToken), 0o600); err != nil {
		log.Fatal(err)
	}
}
