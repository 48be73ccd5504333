package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/flowgate/flowgate/internal/flow/engine"
)

// callerDepth reads engine.DepthHeader, which Flowgate sets on every http
// step's request: the depth of the instance that sent it. Absent, the
// caller is a person or a client (0).
func callerDepth(w http.ResponseWriter, r *http.Request) (int, bool) {
	vals := r.Header.Values(engine.DepthHeader)
	if len(vals) == 0 {
		return 0, true
	}
	n, err := strconv.Atoi(strings.TrimSpace(vals[0]))
	if len(vals) > 1 || err != nil || n < 0 {
		badRequest(w, engine.DepthHeader, fmt.Sprintf(
			"%s must be one header holding a whole number: the depth of the instance whose http step sent the request", engine.DepthHeader))
		return 0, false
	}
	return n, true
}
