package resource

import (
	"slices"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/testutil/jwstest"
)

// TestOwnTokenKindFromGrant: whether an own token stands for a user or for a client comes from
// the grant it records, never from names: a user "ops" and a client "ops" (role admin) exist,
// and the user's token, issued to client ops, is user:ops with the user's roles.
func TestOwnTokenKindFromGrant(t *testing.T) {
	ctx := t.Context()
	key := newECKey(t, "own-1")
	s := newOwnSetup(t, key)
	v, err := newTestValidator(ctx, s.own, nil, Options{Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	token := func(sub, clientID, grant string) string {
		c := claimsFor(ownIss, ownIss, sub)
		c["client_id"], c["scope"] = clientID, "admin"
		if grant != "" {
			c["gty"] = grant
		}
		return key.sign(t, c)
	}
	for _, tc := range []struct {
		name, sub, clientID, grant string
		wantID                     string
		wantRoles                  []string
	}{
		{"user via code", "ops", "ops", "authorization_code", "user:ops", []string{"employee"}},
		{"user via refresh", "ops", "ops", "refresh_token", "user:ops", []string{"employee"}},
		{"client credentials", "ops", "ops", "client_credentials", "client:ops", []string{"admin"}},
		{"user token minted before the grant claim", "alice", "ops", "", "user:alice", []string{"employee", "approver"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Validate(ctx, token(tc.sub, tc.clientID, tc.grant))
			if err != nil {
				t.Fatal(err)
			}
			if p.ID != tc.wantID || string(p.Kind) != strings.Split(tc.wantID, ":")[0] || !slices.Equal(p.Roles, tc.wantRoles) {
				t.Fatalf("principal %s (%s) roles %v, want %s roles %v", p.ID, p.Kind, p.Roles, tc.wantID, tc.wantRoles)
			}
			if tc.wantID == "user:ops" && p.CanAdminister() {
				t.Fatal("user ops may administer through client ops's roles")
			}
		})
	}
	for _, tc := range []struct{ name, sub, clientID, grant, want string }{
		{"no grant, sub is the client", "ops", "ops", "", "no gty claim"},
		{"client credentials for another subject", "alice", "ops", "client_credentials", "sub is not its client_id"},
		{"unknown grant", "ops", "ops", "password", "unknown grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Validate(ctx, token(tc.sub, tc.clientID, tc.grant))
			wantTokenError(t, err, CodeInvalidToken, tc.want)
		})
	}
}

// TestNonCanonicalAndCriticalRefused: a token verifies only in the spelling that was signed,
// and one with critical header extensions is refused, from Flowgate's own issuer and from an
// external one alike.
func TestNonCanonicalAndCriticalRefused(t *testing.T) {
	ctx := t.Context()
	ownKey, extKey := newECKey(t, "own-1"), newRSAKey(t, "ext-1")
	s := newOwnSetup(t, ownKey)
	gi := newGoIssuer(t, extKey)
	v, err := newTestValidator(ctx, s.own, []IssuerConfig{{Name: "ext", Issuer: gi.iss, Audience: "api://flowgate"}},
		Options{Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, iss := range []struct {
		name, iss, aud string
		key            testKey
	}{{"own", ownIss, ownIss, ownKey}, {"external", gi.iss, "api://flowgate", extKey}} {
		t.Run(iss.name, func(t *testing.T) {
			c := claimsFor(iss.iss, iss.aud, "alice")
			raw := iss.key.sign(t, c)
			if _, err := v.Validate(ctx, raw); err != nil {
				t.Fatalf("the canonical token: %v", err)
			}
			for _, bad := range jwstest.Respellings(raw) {
				if _, err := v.Validate(ctx, bad); err == nil {
					t.Errorf("accepted in another spelling: %q", bad)
				} else if !strings.Contains(err.Error(), "invalid_token: malformed token: its ") {
					t.Errorf("another spelling refused as %v, want malformed", err)
				}
			}
			for name, h := range map[string]map[string]any{
				"crit b64":     {"crit": []string{"b64"}, "b64": true},
				"crit unknown": {"crit": []string{"urn:example:must-understand"}, "urn:example:must-understand": 1},
				"crit null":    {"crit": nil},
			} {
				if _, err := v.Validate(ctx, iss.key.signWithHeader(t, c, h)); err == nil {
					t.Errorf("%s: accepted", name)
				} else if !strings.Contains(err.Error(), "invalid_token: malformed token: its header names critical extensions (crit)") {
					t.Errorf("%s: refused as %v, want malformed for crit", name, err)
				}
			}
		})
	}
}
