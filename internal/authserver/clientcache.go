package authserver

import (
	"context"
	"slices"
	"sync"
	"time"
)

// clientTTL bounds how long a server authenticates a client with a record
// it read before: a removed client, or a secret rotated on another server,
// is refused within this time. A second is far below what an operator can
// notice, and it takes the database read off the token endpoint's path.
const clientTTL = time.Second

// clientCache holds recently read client records for client
// authentication. Only found clients are kept, so an unknown id always
// reaches the store.
type clientCache struct {
	st ClientReader
	mu sync.RWMutex
	m  map[string]cachedClient
}

type cachedClient struct {
	c       *client
	expires time.Time
}

const maxCachedClients = 10000

func newClientCache(st ClientReader) *clientCache {
	return &clientCache{st: st, m: map[string]cachedClient{}}
}

// get returns the client with id, from the cache while fresh. The client
// is shared: callers must not change it.
func (cc *clientCache) get(ctx context.Context, id string) (*client, error) {
	now := time.Now()
	cc.mu.RLock()
	e, ok := cc.m[id]
	cc.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.c, nil
	}
	sc, err := cc.st.GetClient(ctx, id)
	if err != nil {
		return nil, err
	}
	c := newClient(sc)
	cc.mu.Lock()
	if len(cc.m) >= maxCachedClients {
		clear(cc.m)
	}
	cc.m[id] = cachedClient{c: c, expires: now.Add(clientTTL)}
	cc.mu.Unlock()
	return c, nil
}

// ClientRoles returns a client's roles for the tokens it holds, read through the same cache
// as client authentication: a client removed, or its roles changed, on any server is honoured
// within a second, as its next token request would be. It takes a database read off every API
// call made with a client's token. store.ErrNotFound when the client does not exist.
func (s *Server) ClientRoles(ctx context.Context, id string) ([]string, error) {
	cl, err := s.clients.get(ctx, id)
	if err != nil {
		return nil, err
	}
	return slices.Clone(cl.c.Roles), nil
}
