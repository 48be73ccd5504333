package duration

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	good := map[string]time.Duration{
		"90s":    90 * time.Second,
		"1h30m":  90 * time.Minute,
		"500ms":  500 * time.Millisecond,
		"7d":     7 * 24 * time.Hour,
		"1.5d":   36 * time.Hour,
		"1d12h":  36 * time.Hour,
		"0d30m":  30 * time.Minute,
		"-1d":    -24 * time.Hour,
		"-5m":    -5 * time.Minute,
		"+2d":    48 * time.Hour,
		"1d1h1s": 25*time.Hour + time.Second,
		"720h":   720 * time.Hour,
		"30d":    30 * 24 * time.Hour,
		"1.5h":   90 * time.Minute,
	}
	for in, want := range good {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", ".d", "7", "1 hour", "12h1d", "1d-1h", "1d+1h", "1dd", "d5h", "106752d", "106751d24h", "xd", "99999999d", "10"} {
		if got, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", in, got)
		}
	}
}

func TestPositive(t *testing.T) {
	if _, err := Positive("0d"); err == nil || err.Error() != `"0d" must be longer than zero` {
		t.Errorf("Positive(0d): %v", err)
	}
	if _, err := Positive("soon"); err == nil || err.Error() != `"soon" is not a duration (such as 90s, 20m, 1h30m, 7d)` {
		t.Errorf("Positive(soon): %v", err)
	}
	if d, err := Positive("7d"); err != nil || d != 7*24*time.Hour {
		t.Errorf("Positive(7d) = %v, %v", d, err)
	}
}
