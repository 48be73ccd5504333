package app

import (
	"context"

	"github.com/flowgate/flowgate/internal/flow/engine"
)

// NewEngine builds a flow engine over the app's store, recording its
// changes through a.Audit; cfg gives the rest (cfg.Store, cfg.Audit and
// cfg.Queue are set here). Every engine is built here, the server's and
// the commands' (which deploy flows without running them, cfg.NoQueue), so
// what an engine needs of the chosen database backend is decided in one
// place: a running engine gets the job queue the backend builds on its own
// pool.
func (a *App) NewEngine(ctx context.Context, cfg engine.Config) (*engine.Engine, error) {
	cfg.Store = a.Store
	cfg.Audit = a.Audit
	if !cfg.NoQueue {
		queue, err := a.Store.OpenQueue(ctx, cfg.Logger)
		if err != nil {
			return nil, err
		}
		cfg.Queue = queue
	}
	return engine.New(ctx, cfg)
}
