package authserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"testing"
)

// ECDSA signatures reach JWS's fixed-size r || s from the DER encoding
// without big.Ints; every curve, every length of r and s (short ones
// included: one in 256 has a leading zero byte) verifies.
func TestJWSSignatureFromDER(t *testing.T) {
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		priv, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		size := (c.Params().BitSize + 7) / 8
		key := &signingKey{priv: priv}
		for i := range 600 {
			input := []byte{byte(i), byte(i >> 8)}
			enc, err := sign(nil, key, input)
			if err != nil {
				t.Fatalf("%s: %v", c.Params().Name, err)
			}
			sig := make([]byte, 2*size)
			if n, err := base64.RawURLEncoding.Decode(sig, enc); err != nil || n != 2*size {
				t.Fatalf("%s: signature of %d bytes (%v), want %d", c.Params().Name, n, err, 2*size)
			}
			h := sha256.Sum256(input)
			r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
			if !ecdsa.Verify(&priv.PublicKey, h[:], r, s) {
				t.Fatalf("%s: signature %d does not verify", c.Params().Name, i)
			}
		}
	}
	for _, der := range [][]byte{
		nil, {0x30}, {0x30, 0x00}, {0x31, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01},
		{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01},                          // short
		{0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00},              // trailing byte inside
		{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00},              // trailing byte after
		{0x30, 0x06, 0x02, 0x01, 0x01, 0x03, 0x01, 0x01},                    // not an INTEGER
		append([]byte{0x30, 0x25, 0x02, 0x21, 0x01}, make([]byte, 32+2)...), // r too long
	} {
		if _, err := jwsSignature(der, 32); err == nil {
			t.Errorf("jwsSignature(%x) accepted", der)
		}
	}
}
