// Package duration reads the durations people write in Flowgate's
// configuration, flows and commands: Go's syntax (500ms, 90s, 1h30m) plus
// days, the unit token lifetimes and audit windows are thought of in
// (7d, 1.5d, 1d12h). One parser keeps "7d" meaning the same everywhere.
package duration

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Examples is the hint error messages give.
const Examples = "such as 90s, 20m, 1h30m, 7d"

// Parse reads a duration: an optional sign, then an optional leading
// number of days (whole or decimal, "7d", "1.5d") followed by what
// time.ParseDuration takes ("12h", "90s"). "7d12h" is 180 hours. Days
// come first or not at all ("12h1d" is refused), so every duration reads
// from the largest unit down.
func Parse(s string) (time.Duration, error) {
	d, err := parse(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (%s)", s, Examples)
	}
	return d, nil
}

// Positive is Parse for the many places only a duration above zero makes
// sense (a timeout, a lifetime, "that long ago").
func Positive(s string) (time.Duration, error) {
	d, err := Parse(s)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q must be longer than zero", s)
	}
	return d, nil
}

var errSyntax = errors.New("bad duration")

func parse(s string) (time.Duration, error) {
	rest, neg := s, false
	if r, ok := strings.CutPrefix(rest, "-"); ok {
		rest, neg = r, true
	} else if r, ok := strings.CutPrefix(rest, "+"); ok {
		rest = r
	}
	num := strings.TrimLeft(rest, "0123456789.")
	if num == "" || num[0] != 'd' {
		// No days: Go's syntax as it is (with the sign put back).
		return time.ParseDuration(s)
	}
	digits := rest[:len(rest)-len(num)]
	if digits == "" || digits == "." {
		return 0, errSyntax
	}
	// A number of days is that number of hours, 24 times: ParseDuration
	// reads the decimal exactly.
	hours, err := time.ParseDuration(digits + "h")
	if err != nil || hours > time.Duration(1<<63-1)/24 {
		return 0, errSyntax
	}
	total := hours * 24
	if after := num[1:]; after != "" {
		if after[0] == '-' || after[0] == '+' {
			return 0, errSyntax
		}
		r, err := time.ParseDuration(after)
		if err != nil || r > time.Duration(1<<63-1)-total {
			return 0, errSyntax
		}
		total += r
	}
	if neg {
		total = -total
	}
	return total, nil
}
