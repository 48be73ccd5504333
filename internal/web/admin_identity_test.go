package web

import (
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/admin"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/store"
)

// The configuration's problems land next to the input they are about:
// scopes[1] and scope_map.x belong to scopes and scope_map; a key with no
// input goes to the top of the form.
func TestFailAllPutsErrorsNextToInputs(t *testing.T) {
	f := clientForm(store.Client{}, true)
	c := store.Client{ID: "bad id!", Scopes: []string{"ok", ""}, GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"/cb"}}
	err := admin.CheckClient(&c)
	if err == nil {
		t.Fatal("a bad client passed")
	}
	f.failAll(err)
	for _, name := range []string{"id", "scopes", "redirect_uris"} {
		if f.input(name).Error == "" {
			t.Errorf("no error next to %s: %+v", name, f)
		}
	}
	if f.input("name").Error != "" || f.Error != "" {
		t.Errorf("errors where there is no problem: name %q, form %q", f.input("name").Error, f.Error)
	}

	g := issuerForm(store.TrustedIssuer{}, false)
	_, err = admin.CheckIssuer(config.TrustedIssuer{Name: "", Issuer: "https://i.example", Audience: "a", ScopeMap: map[string]string{"x": "nope"}}, store.SourceAPI)
	g.failAll(err)
	if g.input("scope_map").Error == "" || !strings.Contains(g.Error, "name: is required") {
		t.Errorf("issuer form: scope_map %q, top %q", g.input("scope_map").Error, g.Error)
	}
}

func TestWordsAndPairs(t *testing.T) {
	if got := strings.Join(words(" a, b\nc\r\n\td,,"), "|"); got != "a|b|c|d" {
		t.Errorf("words: %q", got)
	}
	m, bad := pairs("api.read = workflows.read\n\n x=y \n")
	if bad != "" || len(m) != 2 || m["api.read"] != "workflows.read" || m["x"] != "y" {
		t.Errorf("pairs: %v %q", m, bad)
	}
	if _, bad := pairs("no equals sign"); !strings.Contains(bad, "no =") {
		t.Errorf("a line without =: %q", bad)
	}
	if got := pairsText(map[string]string{"b": "2", "a": "1"}); got != "a = 1\nb = 2\n" {
		t.Errorf("pairsText: %q", got)
	}
}
