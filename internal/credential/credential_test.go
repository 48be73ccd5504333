package credential

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/keyring"
)

// cheap keeps the tests fast; the parameters are still real argon2id.
var cheap = Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse", cheap)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q is not an argon2id PHC string", h)
	}
	if !VerifyPassword("correct horse", h) {
		t.Fatal("right password refused")
	}
	if VerifyPassword("correct horsf", h) {
		t.Fatal("wrong password accepted")
	}
	h2, _ := HashPassword("correct horse", cheap)
	if h == h2 {
		t.Fatal("same hash twice: salt not random")
	}
}

func TestDefaultParamsRoundTrip(t *testing.T) {
	h, err := HashPassword("pw", DefaultArgon2())
	if err != nil {
		t.Fatal(err)
	}
	p, _, _, err := ParseHash(h)
	if err != nil || p.Memory != DefaultArgon2().Memory || p.Time != DefaultArgon2().Time {
		t.Fatalf("ParseHash(%q) = %+v, %v", h, p, err)
	}
}

func TestParseHashRefusesMalformed(t *testing.T) {
	good, _ := HashPassword("pw", cheap)
	parts := strings.Split(good, "$")
	cases := map[string]string{
		"empty":        "",
		"bcrypt":       "$2a$10$abcdefghijklmnopqrstuu5W0Ux6l4ScmtZBNkHfMvKqfzKuPXuwq",
		"argon2i":      strings.Replace(good, "argon2id", "argon2i", 1),
		"version":      strings.Replace(good, "v=19", "v=16", 1),
		"huge memory":  strings.Join([]string{"", "argon2id", "v=19", "m=99999999,t=1,p=1", parts[4], parts[5]}, "$"),
		"bad salt":     strings.Join([]string{"", "argon2id", "v=19", parts[3], "!!", parts[5]}, "$"),
		"missing hash": strings.Join(parts[:5], "$"),
	}
	for name, in := range cases {
		if _, _, _, err := ParseHash(in); !errors.Is(err, ErrMalformedHash) {
			t.Errorf("%s: err = %v, want ErrMalformedHash", name, err)
		}
		if VerifyPassword("pw", in) {
			t.Errorf("%s: VerifyPassword accepted a malformed hash", name)
		}
	}
}

func TestHasherDecoy(t *testing.T) {
	h, err := NewHasher(cheap)
	if err != nil {
		t.Fatal(err)
	}
	if h.Verify("decoy password never used", "") {
		t.Fatal("empty hash matched the decoy password")
	}
	phc, _ := h.Hash("pw")
	if !h.Verify("pw", phc) || h.Verify("px", phc) {
		t.Fatal("Hasher.Verify wrong")
	}
}

func TestClientSecret(t *testing.T) {
	ring, err := keyring.Parse("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	if err != nil {
		t.Fatal(err)
	}
	secret, hash, err := NewClientSecret(ring)
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) < 43 {
		t.Fatalf("secret %d chars, want ≥ 43 (256 bits)", len(secret))
	}
	if strings.Contains(hash, secret) {
		t.Fatal("hash contains the secret")
	}
	if !VerifyClientSecret(ring, secret, hash) {
		t.Fatal("right secret refused")
	}
	if VerifyClientSecret(ring, secret+"x", hash) || VerifyClientSecret(ring, "", hash) || VerifyClientSecret(ring, secret, "plain") {
		t.Fatal("wrong secret or malformed hash accepted")
	}
	s2, _, _ := NewClientSecret(ring)
	if s2 == secret {
		t.Fatal("two secrets equal")
	}
}

func BenchmarkVerifyClientSecret(b *testing.B) {
	ring, _ := keyring.Parse("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	secret, hash, _ := NewClientSecret(ring)
	b.ReportAllocs()
	for b.Loop() {
		if !VerifyClientSecret(ring, secret, hash) {
			b.Fatal("refused")
		}
	}
}

// A Hasher runs no more argon2id computations at once than it has slots:
// with every slot taken, a Verify waits until one is given back.
func TestHasherBoundsConcurrentHashes(t *testing.T) {
	h, err := NewHasher(cheap)
	if err != nil {
		t.Fatal(err)
	}
	phc, err := h.Hash("pw")
	if err != nil {
		t.Fatal(err)
	}
	for range cap(h.slots) {
		h.slots <- struct{}{}
	}
	done := make(chan bool)
	go func() { done <- h.Verify("pw", phc) }()
	select {
	case <-done:
		t.Fatal("Verify ran while every slot was taken")
	case <-time.After(200 * time.Millisecond):
	}
	<-h.slots
	if !<-done {
		t.Error("Verify of the right password failed once a slot was free")
	}
	if len(h.slots) != cap(h.slots)-1 {
		t.Errorf("%d slots taken after Verify, want %d: it did not give its slot back", len(h.slots), cap(h.slots)-1)
	}
}
