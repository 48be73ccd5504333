package resource

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestLinkedSubjectIsTheUser: a trusted issuer's token whose subject is
// linked through federation is that Flowgate user, with the user's roles
// and the token's scopes; a link to a user who is gone makes the token
// invalid; a failing lookup is a 503, not a different principal; an
// unlinked subject stays external. Tokens come from the independent peer.
func TestLinkedSubjectIsTheUser(t *testing.T) {
	p := startPeer(t)
	s := newOwnSetup(t, newECKey(t, "own-1"))
	link := map[string]string{"flowgate-test": "alice"}
	var failing bool
	var asked []LinkClaims
	v, err := newTestValidator(t.Context(), s.own, []IssuerConfig{{Name: "ext", Issuer: p.issuer, Audience: "api://flowgate"}},
		Options{Logger: quietLogger(t), HTTPTimeout: 2 * time.Second,
			LinkedUser: func(_ context.Context, iss string, c LinkClaims) (string, error) {
				if iss != p.issuer {
					t.Errorf("asked for issuer %q", iss)
				}
				asked = append(asked, c)
				if failing {
					return "", errors.New("database down")
				}
				return link[c.Sub], nil
			}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	pr, err := v.Validate(ctx, p.token(t, "", "workflows.read"))
	if err != nil {
		t.Fatal(err)
	}
	if pr.ID != "user:alice" || pr.Kind != KindUser || pr.Subject != "alice" || !slices.Equal(pr.Roles, []string{"employee", "approver"}) ||
		!slices.Equal(pr.Scopes, []string{"workflows.read"}) || pr.IssuerName != "ext" {
		t.Fatalf("linked principal = %+v", pr)
	}
	if len(asked) != 1 || asked[0].Sub != "flowgate-test" {
		t.Fatalf("link looked up with %+v", asked)
	}

	link["flowgate-test"] = "nobody"
	_, err = v.Validate(ctx, p.token(t, "", "workflows.read"))
	wantTokenError(t, err, CodeInvalidToken, "user nobody is unknown or disabled")

	failing = true
	_, err = v.Validate(ctx, p.token(t, "", "workflows.read"))
	wantTokenError(t, err, CodeTemporarilyUnavailable)

	failing = false
	delete(link, "flowgate-test")
	pr, err = v.Validate(ctx, p.token(t, "", "workflows.read"))
	if err != nil || pr.ID != "ext:flowgate-test" || pr.Kind != KindExternal {
		t.Fatalf("unlinked subject: %+v, %v", pr, err)
	}
}
