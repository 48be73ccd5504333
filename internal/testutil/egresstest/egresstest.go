// Package egresstest gives tests the egress policy they need to reach
// their own servers on 127.0.0.1, which the default policy refuses.
package egresstest

import (
	"net/http"
	"time"

	"github.com/flowgate/flowgate/internal/egress"
)

// Loopback is the default policy with 127.0.0.1 allowed.
func Loopback() *egress.Policy {
	p, err := egress.New([]string{"127.0.0.1"}, nil)
	if err != nil {
		panic(err) // a constant entry: cannot happen
	}
	return p
}

// Client is an HTTP client under Loopback with the given timeout.
func Client(timeout time.Duration) *http.Client { return Loopback().Client(timeout) }
