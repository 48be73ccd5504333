package keyring

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	keyA = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
	keyB = "6162636465666768696a6b6c6d6e6f707172737475767778797a303132333435"
)

func TestSealOpenRoundTrip(t *testing.T) {
	r, err := Parse(keyA)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := r.Seal([]byte("hunter2"), []byte("row:1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, []byte("hunter2")) {
		t.Fatal("ciphertext contains the plaintext")
	}
	pt, err := r.Open(ct, []byte("row:1"))
	if err != nil || string(pt) != "hunter2" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	ct2, _ := r.Seal([]byte("hunter2"), []byte("row:1"))
	if bytes.Equal(ct, ct2) {
		t.Fatal("two seals of the same plaintext are equal: nonce reused")
	}
}

func TestOpenRefusesWrongContextOrTampering(t *testing.T) {
	r, _ := Parse(keyA)
	ct, _ := r.Seal([]byte("secret"), []byte("row:1"))
	if _, err := r.Open(ct, []byte("row:2")); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("other associated data: err = %v, want ErrDecrypt", err)
	}
	bad := bytes.Clone(ct)
	bad[len(bad)-1] ^= 1
	if _, err := r.Open(bad, []byte("row:1")); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered: err = %v, want ErrDecrypt", err)
	}
	for _, short := range [][]byte{nil, {1}, ct[:5]} {
		if _, err := r.Open(short, nil); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("short %v: err = %v", short, err)
		}
	}
	other, _ := Parse(keyB)
	if _, err := other.Open(ct, []byte("row:1")); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("other ring: err = %v", err)
	}
}

func TestRotation(t *testing.T) {
	old, _ := Parse("v1:" + keyA)
	ct, _ := old.Seal([]byte("s"), nil)
	rotated, err := Parse("v2:" + keyB + ",v1:" + keyA)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.ActiveID() != "v2" {
		t.Fatalf("active = %q", rotated.ActiveID())
	}
	if pt, err := rotated.Open(ct, nil); err != nil || string(pt) != "s" {
		t.Fatalf("old ciphertext with rotated ring: %q %v", pt, err)
	}
	ct2, _ := rotated.Seal([]byte("s"), nil)
	if _, err := old.Open(ct2, nil); err == nil || !strings.Contains(err.Error(), `"v2"`) {
		t.Fatalf("new ciphertext with old ring: err = %v, want one naming key v2", err)
	}
	mac := old.MAC("client-secret", []byte("abc"))
	if !rotated.VerifyMAC("client-secret", []byte("abc"), mac) {
		t.Fatal("MAC made by old key does not verify on rotated ring")
	}
}

func TestParseErrorsNeverShowKeyMaterial(t *testing.T) {
	for _, in := range []string{"", "# only a comment\n", "c2hvcnQ=", "zzzz-not-a-key", keyA + "," + keyA} {
		_, err := Parse(in)
		if err == nil {
			t.Fatalf("Parse(%q) succeeded", in)
		}
		if in != "" && strings.Contains(err.Error(), strings.Split(in, ",")[0]) && !strings.HasPrefix(in, "#") {
			t.Fatalf("error %q repeats key material", err)
		}
	}
}

func TestMAC(t *testing.T) {
	r, _ := Parse(keyA)
	m := r.MAC("client-secret", []byte("abc"))
	if !r.VerifyMAC("client-secret", []byte("abc"), m) {
		t.Fatal("MAC does not verify")
	}
	if r.VerifyMAC("client-secret", []byte("abd"), m) {
		t.Fatal("wrong value verifies")
	}
	if r.VerifyMAC("other-purpose", []byte("abc"), m) {
		t.Fatal("MAC verifies under another purpose")
	}
	for _, bad := range []string{"", "nodollar", "unknown$00", r.ActiveID() + "$zz"} {
		if r.VerifyMAC("client-secret", []byte("abc"), bad) {
			t.Fatalf("VerifyMAC(%q) = true", bad)
		}
	}
}

func TestWriteAndLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "flowgate.key")
	text, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, text); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, %v; want 0600", st.Mode().Perm(), err)
	}
	if err := WriteFile(path, text); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second WriteFile: err = %v, want ErrExist (never overwrite a key)", err)
	}
	r1, _ := Parse(text)
	r2, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := r1.Seal([]byte("x"), nil)
	if _, err := r2.Open(ct, nil); err != nil {
		t.Fatalf("reloaded ring differs: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key file: err = %v", err)
	}
}
