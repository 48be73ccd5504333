package config

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// The validators below check one entry built outside a file (the admin
// API) by the rules a declared entry meets, as ValidateClient does for
// clients: the entry runs through the file decoder, so there is one set of
// rules. Errors are *FieldError values joined with errors.Join, each
// naming the key (scope_map.X, scopes[1]) without a file position; none
// quotes a secret.

// ValidateUser checks a user's username, email and roles, and that at most
// one of password and password_hash is set.
func ValidateUser(u User) error {
	_, err := validateItem(u, func(d *decoder, seq *yaml.Node) []User { return d.users(seq, "") })
	return err
}

// ValidateTrustedIssuer checks a trusted issuer and returns it with the
// defaults a file entry gets (metadata_url from the issuer, subject_claim
// sub, scope_claim scope, roles_claim roles).
func ValidateTrustedIssuer(t TrustedIssuer) (TrustedIssuer, error) {
	out, err := validateItem(t, func(d *decoder, seq *yaml.Node) []TrustedIssuer { return d.trustedIssuers(seq, "") })
	if err != nil {
		return t, err
	}
	return out, nil
}

// ValidateOAuthServer checks an outbound OAuth server and returns it with
// the file defaults applied (client_auth client_secret_basic,
// refresh_endpoint from token_endpoint). It does not fill redirect_uri,
// which depends on the public URL. UsePrompt and UsePKCE are taken as
// given: a caller wanting the file defaults (both true) sets them.
func ValidateOAuthServer(s OAuthServer) (OAuthServer, error) {
	out, err := validateItem(s, func(d *decoder, seq *yaml.Node) []OAuthServer { return d.oauthServers(seq, "") })
	if err != nil {
		return s, err
	}
	return out, nil
}

// validateItem encodes v as the only element of a YAML list, decodes it
// with list, and strips the "[0]." the list adds to every path.
func validateItem[T any](v T, list func(d *decoder, seq *yaml.Node) []T) (T, error) {
	var zero T
	var item yaml.Node
	if err := item.Encode(v); err != nil {
		return zero, fmt.Errorf("encode: %w", err)
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{&item}}
	d := &decoder{}
	out := list(d, seq)
	if len(d.errs) > 0 {
		errs := make([]error, len(d.errs))
		for i, e := range d.errs {
			e.Line, e.Column = 0, 0
			e.Path = strings.TrimPrefix(strings.TrimPrefix(e.Path, "[0]"), ".")
			errs[i] = e
		}
		return zero, errors.Join(errs...)
	}
	if len(out) != 1 {
		return zero, errors.New("internal: entry was not decoded")
	}
	return out[0], nil
}
