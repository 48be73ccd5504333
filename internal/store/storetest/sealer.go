package storetest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/flowgate/flowgate/internal/store"
)

// gcmSealer is a minimal AES-256-GCM store.Sealer for tests: the nonce
// followed by the ciphertext. It keeps the store tests independent of the
// real key ring while still putting real ciphertext in the database.
type gcmSealer struct{ aead cipher.AEAD }

// errOpen deliberately says nothing about why, like a real sealer.
var errOpen = errors.New("storetest sealer: ciphertext does not open")

// NewSealer returns an AES-256-GCM sealer with a random key.
func NewSealer(tb testing.TB) store.Sealer {
	tb.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		tb.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		tb.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		tb.Fatal(err)
	}
	return gcmSealer{aead}
}

// Seal encrypts with a fresh random nonce.
func (s gcmSealer) Seal(plaintext, ad []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plaintext, ad), nil
}

// Open fails the same way for every bad input.
func (s gcmSealer) Open(ciphertext, ad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(ciphertext) < n {
		return nil, errOpen
	}
	pt, err := s.aead.Open(nil, ciphertext[:n], ciphertext[n:], ad)
	if err != nil {
		return nil, errOpen
	}
	return pt, nil
}
