// Command barehttp is the load script's baseline: a bare net/http server
// answering every request with a fixed JSON body the size of a token
// response, so the script can say what share of the machine's plain HTTP
// throughput an endpoint reaches.
package main

import (
	"flag"
	"log"
	"net/http"
	"strings"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	// About the size of a client-credentials response with an ES256 JWT.
	body := []byte(`{"access_token":"` + strings.Repeat("x", 560) + `","token_type":"Bearer","expires_in":3600,"scope":"workflows.read"}`)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(body)
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
