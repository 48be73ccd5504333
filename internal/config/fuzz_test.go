package config

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse feeds the configuration decoder arbitrary bytes: it must never
// panic, an error must name the file, and a file it accepts must be
// accepted again when parsed a second time (the decoder keeps no state).
func FuzzParse(f *testing.F) {
	full, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	for _, s := range []string{
		"", "server: {addr: ':8080'}\n", "users: [{username: a, password: x}]\n",
		"auth: {access_token_ttl: 7d}\n", "clients: [{id: c, grant_types: [client_credentials]}]\n",
		"limits: {max_steps: 5, max_vars: 1MiB}\n", "egress: {allow: [127.0.0.1/32], deny: [example.com]}\n",
		"a: &x [*x]\n", "? [a]\n: b\n", "server: !!binary aGk=\n", "{\"server\": {\"addr\": 1}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("the error does not name the file: %v", err)
			}
			return
		}
		if c == nil {
			t.Fatal("no configuration and no error")
		}
		if _, err := Parse(data, "fuzz.yaml"); err != nil {
			t.Fatalf("accepted once, refused the second time: %v", err)
		}
	})
}
