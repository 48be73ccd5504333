package tokenrules

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func seg(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestCheckCompact(t *testing.T) {
	h, p, sig := seg(`{"alg":"ES256"}`), seg(`{"sub":"a"}`), seg("sig")
	good := h + "." + p + "." + sig
	if err := CheckCompact(good); err != nil {
		t.Fatalf("canonical token refused: %v", err)
	}
	for name, raw := range map[string]string{
		"two parts":            h + "." + p,
		"four parts":           good + ".x",
		"padding":              h + "." + p + "." + seg("si") + "=",
		"standard alphabet":    h + "." + p + "." + strings.ReplaceAll(seg("\xfb\xff"), "-", "+"),
		"impossible length":    h + "." + p + ".abcde",
		"unused bits set":      h + "." + p + ".cx", // "cw" (the byte "s") with an unused bit set
		"line break":           h + "." + p[:2] + "\r\n" + p[2:] + "." + sig,
		"header not an object": seg(`["crit"]`) + "." + p + "." + sig,
		"crit":                 seg(`{"alg":"ES256","crit":["exp"],"exp":1}`) + "." + p + "." + sig,
		"crit null":            seg(`{"alg":"ES256","crit":null}`) + "." + p + "." + sig,
		"b64 without crit":     seg(`{"alg":"ES256","b64":false}`) + "." + p + "." + sig,
	} {
		if err := CheckCompact(raw); !errors.Is(err, ErrForm) {
			t.Errorf("%s: %v, want ErrForm", name, err)
		}
	}
}

func TestForClient(t *testing.T) {
	for _, tc := range []struct {
		grant, sub, client string
		want               bool
		err                bool
	}{
		{GrantClientCredentials, "svc", "svc", true, false},
		{GrantClientCredentials, "alice", "svc", false, true},
		{GrantAuthorizationCode, "ops", "ops", false, false},
		{GrantRefreshToken, "ops", "ops", false, false},
		{"", "alice", "portal", false, false},
		{"", "alice", "", false, false},
		{"", "ops", "ops", false, true},
		{"password", "alice", "portal", false, true},
	} {
		got, err := ForClient(tc.grant, tc.sub, tc.client)
		if got != tc.want || (err != nil) != tc.err || err != nil && !errors.Is(err, ErrGrant) {
			t.Errorf("ForClient(%q, %q, %q) = %v, %v", tc.grant, tc.sub, tc.client, got, err)
		}
	}
}

// BenchmarkCheckCompact is the cost the form check adds to every token read, for a token of
// ordinary size (an ES256 access token).
func BenchmarkCheckCompact(b *testing.B) {
	raw := seg(`{"alg":"ES256","kid":"7QwHha96z7JdNK3i2FU-Ll","typ":"at+jwt"}`) + "." +
		seg(`{"iss":"https://flowgate.example","sub":"alice","aud":"https://flowgate.example","client_id":"portal","gty":"authorization_code","scope":"openid workflows.read","exp":1796524459,"iat":1796520859,"jti":"PwgzGDr0kRLN-GH8x5_cJg"}`) +
		"." + seg(strings.Repeat("s", 64))
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckCompact(raw); err != nil {
			b.Fatal(err)
		}
	}
}
