package storetest

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/store"
)

func runNamedSecretsConformance(t *testing.T, newStore func(t *testing.T) store.Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"NamedSecretRoundTrip", testNamedSecretRoundTrip},
		{"NamedSecretReplace", testNamedSecretReplace},
		{"NamedSecretNotFound", testNamedSecretNotFound},
		{"NamedSecretList", testNamedSecretList},
		{"NamedSecretDelete", testNamedSecretDelete},
		{"NamedSecretApart", testNamedSecretApart},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func testNamedSecretRoundTrip(t *testing.T, s store.Store) {
	values := map[string][]byte{
		"API_KEY":  []byte("k-0123456789"),
		"pem":      []byte("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"),
		"binary":   {0, 1, 2, 0xff, 0, 0xfe},
		"LONG_ONE": bytes.Repeat([]byte("x"), 64<<10),
	}
	for name, v := range values {
		_, created, err := s.SetNamedSecret(ctx(t), name, v, ts(1000))
		if err != nil || !created {
			t.Fatalf("SetNamedSecret(%q) = %v, %v; want created", name, created, err)
		}
	}
	for name, want := range values {
		got, err := s.GetNamedSecret(ctx(t), name)
		if err != nil {
			t.Fatalf("GetNamedSecret(%q): %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("GetNamedSecret(%q) = %d bytes %.20q, want %d bytes %.20q", name, len(got), got, len(want), want)
		}
	}
}

func testNamedSecretReplace(t *testing.T, s store.Store) {
	if _, _, err := s.SetNamedSecret(ctx(t), "TOKEN", []byte("first value"), ts(1000)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SetNamedSecret(ctx(t), "OTHER", []byte("untouched"), ts(1000)); err != nil {
		t.Fatal(err)
	}
	n, created, err := s.SetNamedSecret(ctx(t), "TOKEN", []byte("second, longer value"), ts(2000))
	if err != nil || created {
		t.Fatalf("replace = %v, %v; want not created", created, err)
	}
	wantTime(t, "replaced created_at", n.CreatedAt, ts(1000))
	wantTime(t, "replaced updated_at", n.UpdatedAt, ts(2000))
	if got, err := s.GetNamedSecret(ctx(t), "TOKEN"); err != nil || string(got) != "second, longer value" {
		t.Errorf("after replace = %q, %v", got, err)
	}
	if got, err := s.GetNamedSecret(ctx(t), "OTHER"); err != nil || string(got) != "untouched" {
		t.Errorf("neighbour = %q, %v", got, err)
	}
	l, _, err := s.ListNamedSecrets(ctx(t), store.Page{})
	if err != nil || len(l) != 2 {
		t.Fatalf("list = %v, %v", l, err)
	}
	wantTime(t, "created_at", l[1].CreatedAt, ts(1000))
	wantTime(t, "updated_at", l[1].UpdatedAt, ts(2000))
}

func testNamedSecretNotFound(t *testing.T, s store.Store) {
	_, err := s.GetNamedSecret(ctx(t), "MISSING")
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), `"MISSING"`) {
		t.Errorf("GetNamedSecret = %v, want ErrNotFound naming the secret", err)
	}
	if err := s.DeleteNamedSecret(ctx(t), "MISSING"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteNamedSecret = %v, want ErrNotFound", err)
	}
	// The server's own secrets are another namespace: flows must never
	// reach a signing key or the key canary by naming it.
	if err := s.PutSecret(ctx(t), "SERVER_ONLY", []byte("internal")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetNamedSecret(ctx(t), "SERVER_ONLY"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a server secret read as a named one: %v", err)
	}
}

func testNamedSecretList(t *testing.T, s store.Store) {
	names := []string{"b", "A", "a_1", "Z9", "c"}
	for _, n := range names {
		if _, _, err := s.SetNamedSecret(ctx(t), n, []byte("value of "+n), ts(1000)); err != nil {
			t.Fatal(err)
		}
	}
	all, pages := pageAll(t, 2, func(p store.Page) ([]store.NamedSecret, string, error) { return s.ListNamedSecrets(ctx(t), p) })
	var got []string
	for _, n := range all {
		got = append(got, n.Name)
		wantTime(t, n.Name+" created_at", n.CreatedAt, ts(1000))
	}
	if want := "A Z9 a_1 b c"; strings.Join(got, " ") != want || pages != 3 {
		t.Errorf("names = %v in %d pages, want %s in 3 (byte order)", got, pages, want)
	}
	if _, _, err := s.ListNamedSecrets(ctx(t), store.Page{Cursor: "!!"}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("bad cursor: %v", err)
	}
}

func testNamedSecretDelete(t *testing.T, s store.Store) {
	for _, n := range []string{"GONE", "KEPT"} {
		if _, _, err := s.SetNamedSecret(ctx(t), n, []byte("v-"+n), ts(1000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteNamedSecret(ctx(t), "GONE"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetNamedSecret(ctx(t), "GONE"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
	if got, err := s.GetNamedSecret(ctx(t), "KEPT"); err != nil || string(got) != "v-KEPT" {
		t.Errorf("neighbour = %q, %v", got, err)
	}
	_, created, err := s.SetNamedSecret(ctx(t), "GONE", []byte("again"), ts(3000))
	if err != nil || !created {
		t.Errorf("set after delete = %v, %v; want created", created, err)
	}
}

// testNamedSecretApart checks that the table behind named secrets is not
// the server's: setting a named secret leaves a server secret of the same
// name alone.
func testNamedSecretApart(t *testing.T, s store.Store) {
	if err := s.PutSecret(ctx(t), "shared-name", []byte("server")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SetNamedSecret(ctx(t), "shared-name", []byte("flow"), ts(1000)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetSecret(ctx(t), "shared-name"); err != nil || string(got) != "server" {
		t.Errorf("server secret = %q, %v", got, err)
	}
	if got, err := s.GetNamedSecret(ctx(t), "shared-name"); err != nil || string(got) != "flow" {
		t.Errorf("named secret = %q, %v", got, err)
	}
}
