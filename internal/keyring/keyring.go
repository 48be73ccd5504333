// Package keyring encrypts Flowgate's secrets at rest (vault tokens, signing
// keys, client private keys) with AES-256-GCM. Every ciphertext names the key
// that sealed it, so a ring can hold old keys for reading while a new one
// seals: keys rotate without re-encrypting everything at once.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// KeySize is the length of every key: AES-256.
const KeySize = 32

// format is the first byte of every ciphertext, so a later format can be
// told apart from this one.
const format byte = 1

// ErrDecrypt is returned when a ciphertext does not open: wrong key, wrong
// associated data or tampered bytes. It deliberately says no more.
var ErrDecrypt = errors.New("keyring: ciphertext does not open with this key ring")

type key struct {
	id   string
	aead cipher.AEAD
	raw  []byte
	// subkeys caches the MAC subkey per purpose: deriving it costs two
	// HMAC constructions, which showed up on the token endpoint's profile.
	subkeys sync.Map // purpose string -> []byte
}

// Ring holds one active key, which seals, and any number of older keys,
// which only open. It is safe for concurrent use.
type Ring struct {
	active *key
	byID   map[string]*key
}

// Parse reads a key ring from its text form: one or more keys separated by
// commas or newlines, the first being the active one. Each key is 32 bytes
// in base64 (standard or URL alphabet, padded or not) or hex, optionally
// prefixed with "ID:" to name it; unnamed keys are named by a hash of their
// bytes. Lines starting with # are comments.
func Parse(text string) (*Ring, error) {
	r := &Ring{byID: map[string]*key{}}
	var fields []string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		fields = append(fields, strings.Split(line, ",")...)
	}
	n := 0
	for _, f := range fields {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n++
		id, material, named := strings.Cut(f, ":")
		if !named {
			material, id = id, ""
		}
		raw, err := decodeKey(material)
		if err != nil {
			// The position, never the material, identifies the bad key.
			return nil, fmt.Errorf("keyring: key %d: %w", n, err)
		}
		if id == "" {
			sum := sha256.Sum256(raw)
			id = hex.EncodeToString(sum[:4])
		}
		if strings.ContainsAny(id, " \t") || len(id) > 255 {
			return nil, fmt.Errorf("keyring: key %d: id must be at most 255 characters without spaces", n)
		}
		if _, dup := r.byID[id]; dup {
			return nil, fmt.Errorf("keyring: key %d: id %q appears twice", n, id)
		}
		k, err := newKey(id, raw)
		if err != nil {
			return nil, err
		}
		r.byID[id] = k
		if r.active == nil {
			r.active = k
		}
	}
	if r.active == nil {
		return nil, errors.New("keyring: no key given")
	}
	return r, nil
}

func decodeKey(s string) ([]byte, error) {
	if len(s) == 2*KeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("decodes to %d bytes, want %d", len(b), KeySize)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("not %d bytes of base64 or hex", KeySize)
}

func newKey(id string, raw []byte) (*key, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return &key{id: id, aead: aead, raw: raw}, nil
}

// Generate returns the text form of a new random key.
func Generate() (string, error) {
	b := make([]byte, KeySize)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", fmt.Errorf("keyring: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// LoadFile reads a ring from a file, refusing files that others can read:
// the key is the one secret that protects every other.
func LoadFile(path string) (*Ring, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keyring: %s is readable by others (mode %v); chmod 600 it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	r, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// WriteFile writes a ring's text form to a new file of mode 0600. It
// refuses to replace an existing file: overwriting a key loses every secret
// it sealed.
func WriteFile(path, text string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	_, werr := f.WriteString("# Flowgate secret key: keep it, back it up, never share it.\n" + text + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(path)
		return fmt.Errorf("keyring: writing %s: %w", path, werr)
	}
	return nil
}

// ActiveID names the key that seals.
func (r *Ring) ActiveID() string { return r.active.id }

// Seal encrypts plaintext with the active key. The result is
// format | len(id) | id | nonce | ciphertext+tag.
func (r *Ring) Seal(plaintext, associatedData []byte) ([]byte, error) {
	k := r.active
	ns := k.aead.NonceSize()
	out := make([]byte, 0, 2+len(k.id)+ns+len(plaintext)+k.aead.Overhead())
	out = append(out, format, byte(len(k.id)))
	out = append(out, k.id...)
	nonce := out[len(out) : len(out)+ns]
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	out = out[:len(out)+ns]
	return k.aead.Seal(out, nonce, plaintext, associatedData), nil
}

// Open decrypts a ciphertext made by Seal with any key of the ring.
func (r *Ring) Open(ciphertext, associatedData []byte) ([]byte, error) {
	if len(ciphertext) < 2 || ciphertext[0] != format {
		return nil, ErrDecrypt
	}
	idLen := int(ciphertext[1])
	if len(ciphertext) < 2+idLen {
		return nil, ErrDecrypt
	}
	k, ok := r.byID[string(ciphertext[2:2+idLen])]
	if !ok {
		return nil, fmt.Errorf("%w: sealed with key %q, which the ring does not hold", ErrDecrypt, ciphertext[2:2+idLen])
	}
	rest := ciphertext[2+idLen:]
	ns := k.aead.NonceSize()
	if len(rest) < ns+k.aead.Overhead() {
		return nil, ErrDecrypt
	}
	pt, err := k.aead.Open(nil, rest[:ns], rest[ns:], associatedData)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// MAC computes a keyed hash under a purpose-specific subkey of the active
// key and returns it with the key id, as "ID$hex". Used for values that are
// random enough not to need a slow hash (client secrets) but that a stolen
// database alone must not let anyone check guesses against.
func (r *Ring) MAC(purpose string, value []byte) string {
	return r.active.id + "$" + hex.EncodeToString(mac(r.active, purpose, value))
}

// VerifyMAC checks a value against a MAC made by MAC with any key of the
// ring, in constant time.
func (r *Ring) VerifyMAC(purpose string, value []byte, tagged string) bool {
	id, hexSum, ok := strings.Cut(tagged, "$")
	if !ok {
		return false
	}
	k, ok := r.byID[id]
	if !ok {
		return false
	}
	want, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	return hmac.Equal(mac(k, purpose, value), want)
}

func mac(k *key, purpose string, value []byte) []byte {
	h := hmac.New(sha256.New, k.subkey(purpose))
	h.Write(value)
	return h.Sum(nil)
}

// subkey derives a key per purpose so the encryption key itself is never
// used as an HMAC key, and MACs for one purpose cannot stand in for another.
func (k *key) subkey(purpose string) []byte {
	if sk, ok := k.subkeys.Load(purpose); ok {
		return sk.([]byte)
	}
	d := hmac.New(sha256.New, k.raw)
	d.Write([]byte("flowgate mac subkey\x00" + purpose))
	sk := d.Sum(nil)
	k.subkeys.Store(purpose, sk)
	return sk
}
