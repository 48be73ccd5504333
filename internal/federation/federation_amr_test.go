package federation

import (
	"slices"
	"testing"
)

// TestUpstreamAMR: the provider's amr is passed on only as short plain
// strings, without duplicates or "fed", at most ten.
func TestUpstreamAMR(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want []string
	}{
		{[]any{"pwd", "mfa", "otp"}, []string{"pwd", "mfa", "otp"}},
		{[]any{"fed", "hwk", "hwk", 7, "", "bad value", "<script>"}, []string{"hwk"}},
		{"mfa", nil},
		{nil, nil},
		{[]any{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}, []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}},
	} {
		if got := UpstreamAMR(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("UpstreamAMR(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
