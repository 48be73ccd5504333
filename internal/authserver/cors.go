package authserver

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// originsTTL is how long the set of browser origins is trusted before it
// is read again, so an origin added or removed on any server is honoured
// within seconds.
const originsTTL = 5 * time.Second

// origins is the union of every client's allowed_origins: the browser
// origins that get CORS answers on the provider's endpoints and the APIs.
type origins struct {
	st ClientReader
	mu sync.Mutex
	// set and read are replaced together under mu.
	set  map[string]bool
	read time.Time
}

// AllowedOrigin reports whether a browser origin is one a client lists in
// allowed_origins. It reads the clients at most every 5 s; a failure to
// read keeps the last set (or allows nothing), logged.
func (s *Server) AllowedOrigin(ctx context.Context, origin string) bool {
	o := s.origins
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.set == nil || s.now().Sub(o.read) > originsTTL {
		set, err := o.load(ctx)
		if err != nil {
			s.logger.Error("reading the clients' allowed origins", "err", err)
		} else {
			o.set = set
		}
		o.read = s.now()
	}
	return o.set[origin]
}

func (o *origins) load(ctx context.Context) (map[string]bool, error) {
	set := map[string]bool{}
	p := store.Page{Limit: store.MaxLimit}
	for {
		cs, next, err := o.st.ListClients(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			for _, origin := range c.AllowedOrigins {
				set[origin] = true
			}
		}
		if next == "" {
			return set, nil
		}
		p.Cursor = next
	}
}

// CORSPaths are the provider's endpoints browsers call from other
// origins: discovery, JWKS, token, revoke and userinfo.
func CORSPaths() []string {
	return slices.Clone([]string{PathDiscovery, PathASMetadata, PathJWKS, PathToken, PathRevoke, PathUserinfo})
}
