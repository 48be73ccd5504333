package engine

import (
	"context"

	"github.com/flowgate/flowgate/internal/store"
)

// Store is what the engine needs of the store: flows, their instances and
// tasks, the named secrets steps read, the OAuth servers deploys check
// flows against, and which backend it is (a SQLite database serves one
// server, so recovery need not wait out a dead predecessor's leases).
type Store interface {
	store.Flows
	ServerLookup
	GetNamedSecret(ctx context.Context, name string) ([]byte, error)
	// GetUser and ListUsers resolve email recipients.
	GetUser(ctx context.Context, username string) (store.User, error)
	ListUsers(ctx context.Context, p store.Page) ([]store.User, string, error)
	Backend() string
}

// ServerLookup reads an OAuth server by name; store.ErrNotFound when there
// is none.
type ServerLookup interface {
	GetOAuthServer(ctx context.Context, name string) (store.OAuthServer, error)
}

// Queue is the job queue that carries what must wait (wait deadlines,
// HTTP retry backoffs) to a server: the backend builds it on the store's
// database (store/backend: OpenQueue), and the store inserts each wake a
// commit asks for (store.InstanceCommit.Wake) in the commit's own
// transaction, so a wake exists exactly when its commit does. The engine
// only works the queue: Start hands it the function that resumes an
// instance when its wake is due; Stop waits for the jobs being worked.
type Queue interface {
	Start(ctx context.Context, resume func(ctx context.Context, w store.Wake) error) error
	Stop(ctx context.Context) error
}
