package app

import (
	"context"
	"time"
)

// pruneInterval is how often expired codes, sessions, refresh tokens,
// deny-list entries, connect states, federation states and sign-in failures are deleted.
// Every server prunes; the deletes are idempotent, so several servers on
// one database do not conflict.
const pruneInterval = 10 * time.Minute

// pruneOnce deletes what expired before now, each kind on its own, so one
// failing does not keep the others.
func (s *Server) pruneOnce(ctx context.Context, now time.Time) {
	n, err := s.Store.PruneAuth(ctx, now)
	s.logPruned(ctx, "authorization data", n, err)
	// Sign-ins at outbound OAuth servers that were never finished.
	states, err := s.Store.DeleteExpiredConnectStates(ctx, now)
	s.logPruned(ctx, "connect states", int64(states), err)
	// Failed sign-ins the throttle no longer remembers.
	failures, err := s.Store.DeleteExpiredSignInFailures(ctx, now)
	s.logPruned(ctx, "sign-in failures", int64(failures), err)
	// Federated sign-ins that never came back from the provider.
	fed, err := s.Store.DeleteExpiredFederationStates(ctx, now)
	s.logPruned(ctx, "federation states", int64(fed), err)
	// Webhook signatures past the time a replay of them could matter.
	replays, err := s.Store.PruneReplays(ctx, now)
	s.logPruned(ctx, "webhook replay guards", replays, err)
	// Mail delivered a week ago: kept that long to answer "was it sent?".
	mails, err := s.Store.PruneMails(ctx, now.Add(-7*24*time.Hour))
	s.logPruned(ctx, "sent mail", mails, err)
}

func (s *Server) logPruned(ctx context.Context, what string, n int64, err error) {
	if err != nil && ctx.Err() == nil {
		s.Logger.Warn("pruning expired "+what, "err", err)
	} else if n > 0 {
		s.Logger.Debug("pruned expired "+what, "rows", n)
	}
}
