package store

import (
	"encoding/base64"
	"errors"
)

// ErrInvalidCursor is returned by list methods when Page.Cursor was not
// produced by a previous page, so that an API can answer 400 rather than 500.
var ErrInvalidCursor = errors.New("invalid page cursor")

// EncodeCursor turns the last key of a page into an opaque cursor. It is
// base64 so that keys with any bytes survive a URL query string, and so that
// clients are not tempted to build cursors themselves.
func EncodeCursor(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(key))
}

// DecodeCursor reverses EncodeCursor; ErrInvalidCursor when c is not one.
func DecodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", ErrInvalidCursor
	}
	return string(b), nil
}
