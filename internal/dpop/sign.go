package dpop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// NewKey makes a P-256 key for proofs (ES256), as PKCS #8 DER: what the
// store seals.
func NewKey() ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("dpop: new key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("dpop: new key: %w", err)
	}
	return der, nil
}

// Prover makes proofs with one key and remembers the nonce each origin
// (authorization server, API) last asked for. It is safe for concurrent
// use.
type Prover struct {
	signer jose.Signer
	now    func() time.Time

	mu     sync.Mutex
	nonces map[string]string // origin -> nonce
}

// NewProver makes proofs with a PKCS #8 ECDSA P-256 key (NewKey's); now
// nil means time.Now.
func NewProver(pkcs8 []byte, now func() time.Time) (*Prover, error) {
	k, err := x509.ParsePKCS8PrivateKey(pkcs8)
	if err != nil {
		return nil, fmt.Errorf("dpop: key: %w", err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("dpop: key is not ECDSA P-256")
	}
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: ec}, opts)
	if err != nil {
		return nil, fmt.Errorf("dpop: signer: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Prover{signer: s, now: now, nonces: map[string]string{}}, nil
}

func origin(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return u
	}
	return strings.ToLower(pu.Scheme) + "://" + strings.ToLower(pu.Host)
}

// Proof makes a proof for a request: method, the URL (query and fragment
// are left out of htu), and the access token it carries ("" at a token
// endpoint), with the nonce the URL's origin last gave.
func (p *Prover) Proof(method, rawURL, accessToken string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("dpop: %w", err)
	}
	u.RawQuery, u.Fragment, u.RawFragment = "", "", ""
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	c := claims{JTI: base64.RawURLEncoding.EncodeToString(jti[:]), HTM: method, HTU: u.String()}
	iat := float64(p.now().Unix())
	c.IAT = &iat
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		c.ATH = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	p.mu.Lock()
	c.Nonce = p.nonces[origin(rawURL)]
	p.mu.Unlock()
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	jws, err := p.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("dpop: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// SetNonce records the nonce an origin sent (a DPoP-Nonce header on any
// answer of it); an empty one changes nothing.
func (p *Prover) SetNonce(rawURL, nonce string) {
	if nonce == "" {
		return
	}
	p.mu.Lock()
	p.nonces[origin(rawURL)] = nonce
	p.mu.Unlock()
}
