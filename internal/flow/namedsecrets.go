package flow

import (
	"errors"
	"fmt"
	"regexp"
	"unicode/utf8"
)

// Limits of named secrets (secrets.NAME).
const (
	// MinSecretLen is the shortest secret value accepted, and the
	// shortest value the engine masks wherever it appears: a shorter one
	// would turn ordinary text all over the history into "****" and its
	// masking would tell as much as it hides.
	MinSecretLen = 4
	// MaxSecretLen bounds a secret value (a PEM private key fits).
	MaxSecretLen = 64 << 10
)

// secretNameRE is what secrets.NAME can name: an expression identifier.
var secretNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// CheckSecretName says why name cannot name a secret, or nil.
func CheckSecretName(name string) error {
	if !secretNameRE.MatchString(name) {
		return fmt.Errorf("secret name %q must be letters, digits and _ (not starting with a digit), at most 64, so that flows can write secrets.NAME", name)
	}
	return nil
}

// CheckSecretValue says why value cannot be a secret's value, or nil. It
// never quotes the value.
func CheckSecretValue(value []byte) error {
	switch {
	case len(value) < MinSecretLen:
		return fmt.Errorf("the value must be at least %d characters: a shorter one cannot be masked in the history without masking ordinary text", MinSecretLen)
	case len(value) > MaxSecretLen:
		return fmt.Errorf("the value is longer than %d bytes", MaxSecretLen)
	case !utf8.Valid(value):
		return errors.New("the value must be text (UTF-8)")
	}
	return nil
}
