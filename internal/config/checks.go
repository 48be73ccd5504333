package config

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/flowgate/flowgate/internal/egress"
	"github.com/flowgate/flowgate/internal/principal"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// The OAuth protocol values the configuration names, spelled once, as
// zitadel/oidc (the provider's protocol layer) spells them.
const (
	authBasic         = string(oidc.AuthMethodBasic)
	authPost          = string(oidc.AuthMethodPost)
	authPrivateKeyJWT = string(oidc.AuthMethodPrivateKeyJWT)
	authNone          = string(oidc.AuthMethodNone)
	grantCode         = string(oidc.GrantTypeCode)
	grantRefresh      = string(oidc.GrantTypeRefreshToken)
	grantClientCreds  = string(oidc.GrantTypeClientCredentials)
)

// Allowed values of the enumerated keys. Never written after start.
var (
	signingAlgs       = []string{"ES256", "RS256", "EdDSA"}
	cookieModes       = []string{"persistent", "session"}
	mfaModes          = []string{MFAOff, MFAOptional, MFARequired}
	clientAuthMethods = []string{authBasic, authPost, authPrivateKeyJWT, authNone}
	consentModes      = []string{"user", "admin"}
	grantTypes        = []string{grantCode, grantRefresh, grantClientCreds}
	subjectClaims     = []string{"sub", "oid", "upn", "email", "preferred_username"}
	scopeClaims       = []string{"scp", "scope"}
	outboundAuth      = []string{authBasic, authPost, authPrivateKeyJWT}
	// flowgateScopes are the API scopes (docs/api.md), the only targets a
	// trusted issuer's scope_map can grant.
	flowgateScopes = []string{"workflows.read", "workflows.start", "tasks", "flows.invoke", "data.read", "scim", "admin"}
	// reservedParams are set by the connector itself; letting params
	// override them would break or subvert the protocol.
	reservedParams = []string{
		"client_id", "client_secret", "client_assertion", "client_assertion_type",
		"redirect_uri", "response_type", "grant_type", "code", "code_verifier",
		"code_challenge", "code_challenge_method", "state", "nonce", "refresh_token", "scope",
	}
)

func checkAddr(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not a listen address such as :8080 or 127.0.0.1:8080", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has no valid port number", s)
	}
	return nil
}

// normalizePublicURL checks the public URL and drops trailing slashes, so
// that issuer comparisons and joined paths never see "//".
func normalizePublicURL(s string) (string, error) {
	if err := checkHTTPURL(s); err != nil {
		return "", err
	}
	u, _ := url.Parse(s)
	if u.RawQuery != "" || u.ForceQuery {
		return "", fmt.Errorf("%q must not have a query", s)
	}
	return strings.TrimRight(s, "/"), nil
}

// checkDatabase never quotes the DSN: a PostgreSQL URL carries a password.
// checkEgressEntry accepts what egress.New does: a CIDR, an IP address or
// a host name.
func checkEgressEntry(s string) error {
	_, _, err := egress.ParseEntry(s)
	return err
}

func checkDatabase(s string) error {
	if path, ok := strings.CutPrefix(s, "sqlite:"); ok {
		if path == "" {
			return errors.New("sqlite: needs a file path, such as sqlite:./flowgate.db")
		}
		return nil
	}
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		if _, err := url.Parse(s); err != nil {
			return errors.New("is not a valid PostgreSQL URL")
		}
		return nil
	}
	return errors.New("must be sqlite:PATH or a postgres:// URL")
}

// shownURL is how a bad URL is quoted back: without any password in it.
func shownURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return strconv.Quote(u.Redacted())
	}
	if strings.Contains(s, "@") {
		return "the value"
	}
	return strconv.Quote(s)
}

// checkHTTPURL accepts absolute http and https URLs. Plain http stays
// allowed everywhere because development setups (localhost, Keycloak in
// a container) use it.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%s is not an absolute http(s) URL", shownURL(s))
	}
	if u.User != nil {
		return fmt.Errorf("%s must not contain a user or password", shownURL(s))
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return fmt.Errorf("%s must not have a #fragment", shownURL(s))
	}
	return nil
}

// checkRedirectURI follows RFC 6749 §3.1.2: absolute, no fragment. Other
// schemes than http(s) are allowed for native apps (com.example.app:/cb).
func checkRedirectURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() {
		return fmt.Errorf("%s is not an absolute URL", shownURL(s))
	}
	if (u.Scheme == "http" || u.Scheme == "https") && u.Hostname() == "" {
		return fmt.Errorf("%s has no host", shownURL(s))
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return fmt.Errorf("%s must not have a #fragment", shownURL(s))
	}
	return nil
}

// checkLocalOrHTTPURL allows a path on Flowgate itself ("/login") besides
// an absolute URL; "//host" is refused since browsers treat it as another
// site.
func checkLocalOrHTTPURL(s string) error {
	if strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//") && !strings.HasPrefix(s, "/\\") {
		if _, err := url.Parse(s); err == nil {
			return nil
		}
	}
	if err := checkHTTPURL(s); err != nil {
		return fmt.Errorf("%s is neither an absolute http(s) URL nor a path starting with /", shownURL(s))
	}
	return nil
}

// checkName is for names other parts refer to: flows name oauth servers,
// principals start with a trusted issuer's name, login URLs carry an
// identity provider's.
func checkName(s string) error {
	if !principal.ValidName(s) {
		return fmt.Errorf("%q must be at most 64 letters, digits and . _ -", s)
	}
	return nil
}

func checkClientID(s string) error {
	if len(s) > 128 {
		return errors.New("must be at most 128 characters")
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f {
			return fmt.Errorf("%q may only contain visible ASCII characters", s)
		}
	}
	return nil
}

func checkRole(s string) error {
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("%q must not contain spaces", s)
	}
	return nil
}

// checkScope applies RFC 6749 §3.3 scope-token syntax.
func checkScope(s string) error {
	for _, r := range s {
		if r < 0x21 || r == '"' || r == '\\' || r > 0x7e {
			return fmt.Errorf("%q is not a valid scope (no spaces, quotes or backslashes)", s)
		}
	}
	return nil
}

func checkEmail(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s {
		return fmt.Errorf("%q is not an email address", s)
	}
	return nil
}

// checkArgon2PHC mirrors the bounds internal/credential reads hashes with,
// so a hash accepted here can be verified at login. It never quotes the
// hash.
func checkArgon2PHC(s string) error {
	bad := errors.New("is not an argon2id PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash)")
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v=19" {
		return bad
	}
	var m, t, p uint64
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || n != 3 ||
		parts[3] != fmt.Sprintf("m=%d,t=%d,p=%d", m, t, p) {
		return bad
	}
	if m < 8 || m > 1<<20 || t < 1 || t > 16 || p < 1 || p > 255 {
		return errors.New("has argon2id parameters out of range (m 8..1048576, t 1..16, p 1..255)")
	}
	b64 := base64.RawStdEncoding
	if salt, err := b64.DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return bad
	}
	if sum, err := b64.DecodeString(parts[5]); err != nil || len(sum) < 16 {
		return bad
	}
	return nil
}

// checkJWKS wants public asymmetric keys only: the set is what Flowgate
// verifies client assertions with, and a private or symmetric key in a
// config file is a leak.
func checkJWKS(text string) error {
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(text), &set); err != nil {
		return errors.New("is not a JSON Web Key Set ({\"keys\": [...]})")
	}
	if len(set.Keys) == 0 {
		return errors.New("has no keys")
	}
	for i, k := range set.Keys {
		kty, _ := k["kty"].(string)
		switch kty {
		case "EC", "RSA", "OKP":
		case "":
			return fmt.Errorf("keys[%d] has no kty", i)
		default:
			return fmt.Errorf("keys[%d]: kty %q is not EC, RSA or OKP", i, kty)
		}
		if _, ok := k["d"]; ok {
			return fmt.Errorf("keys[%d] is a private key; register the public key only", i)
		}
	}
	return nil
}

func checkPublicKeyPEM(s string) error {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return errors.New("is not PEM")
	}
	switch block.Type {
	case "PUBLIC KEY":
		if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
			return fmt.Errorf("is not a valid public key: %w", err)
		}
	case "CERTIFICATE":
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("is not a valid certificate: %w", err)
		}
	default:
		if strings.Contains(block.Type, "PRIVATE") {
			return errors.New("is a private key; register the public key only")
		}
		return fmt.Errorf("must be a PUBLIC KEY or CERTIFICATE PEM block, not %s", block.Type)
	}
	return nil
}

// checkSMTPHost accepts a host name or address without a port (the port
// has its own key).
func checkSMTPHost(s string) error {
	if s == "" {
		return nil
	}
	if strings.ContainsAny(s, ":/ ") && net.ParseIP(s) == nil {
		return fmt.Errorf("%q: want a host name or address; the port goes in port", s)
	}
	return nil
}

// checkMailFrom accepts an address with an optional name.
func checkMailFrom(s string) error {
	if _, err := mail.ParseAddress(s); err != nil {
		return fmt.Errorf("%q is not an email address (such as Flowgate <flowgate@example.com>): %w", s, err)
	}
	return nil
}

// checkOrigin accepts a browser origin as browsers send it: http or https,
// a host, an optional port, nothing else ("*" is not an origin: browser
// clients are named one by one).
func checkOrigin(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(s, "/") {
		return fmt.Errorf("%q is not an origin: want scheme://host[:port], e.g. https://app.example.com", s)
	}
	if s != strings.ToLower(u.Scheme)+"://"+strings.ToLower(u.Host) {
		return fmt.Errorf("%q: write the origin in lower case, as browsers send it", s)
	}
	return nil
}

// checkResource accepts a resource indicator (RFC 8707 §2): an absolute
// URI without a fragment.
func checkResource(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Fragment != "" || strings.Contains(s, "#") {
		return fmt.Errorf("%q is not a resource: want an absolute URI without a fragment, e.g. https://api.example.com", s)
	}
	return nil
}

// checkProxy accepts a trusted proxy: a CIDR or a single IP address.
func checkProxy(s string) error {
	if _, err := netip.ParsePrefix(s); err == nil {
		return nil
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	return fmt.Errorf("%q is not a CIDR or an IP address (e.g. 10.0.0.0/8 or 192.0.2.10)", s)
}

// checkReadableFile accepts a file that can be opened now.
func checkReadableFile(s string) error {
	if s == "" {
		return nil
	}
	f, err := os.Open(s)
	if err != nil {
		return fmt.Errorf("cannot be read: %w", err)
	}
	return f.Close()
}
