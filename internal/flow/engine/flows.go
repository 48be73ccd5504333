package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/store"
)

// flowCache keeps parsed definitions. A version never changes once
// deployed, so versions are kept for good; which version is the latest is
// re-read after ttl, so a deploy on another server is seen within it (a
// deploy on this server is seen at once).
type flowCache struct {
	ttl time.Duration
	now func() time.Time

	mu       sync.Mutex
	latest   map[string]cachedLatest
	versions map[flowKey]*flow.Definition
}

type flowKey struct {
	name    string
	version int
}

type cachedLatest struct {
	def     *flow.Definition
	fetched time.Time
}

// Deploy validates source and stores it as the next version of its flow.
// Validation problems come back as Parse returns them (errors naming the
// file, flow, step and field); nothing is stored then. Source identical to
// the latest version's is not stored again: created is false and the
// latest version is returned, so deploying a folder at every start does
// not pile up versions. A new version is audited as deployed by by (a
// principal, "cli:<OS user>" or "config").
func (e *Engine) Deploy(ctx context.Context, source []byte, filename, by string) (def *flow.Definition, created bool, err error) {
	def, err = e.parseDeployable(ctx, source, filename)
	if err != nil {
		return nil, false, err
	}
	latest, err := e.st.GetFlow(ctx, def.Name, 0)
	switch {
	case err == nil && bytes.Equal(latest.Source, source):
		def.Version = latest.Version
		e.flows.put(def, e.flows.now())
		return def, false, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, false, fmt.Errorf("deploy flow %s: %w", def.Name, err)
	}
	v, err := e.st.DeployFlow(ctx, store.FlowVersion{
		Name: def.Name, Title: def.Title, Source: source, Filename: filename, DeployedBy: by,
	})
	if err != nil {
		return nil, false, fmt.Errorf("deploy flow %s: %w", def.Name, err)
	}
	def.Version = v.Version
	e.flows.put(def, e.flows.now())
	audit.Change{Event: audit.FlowDeployed, By: by, Detail: fmt.Sprintf("flow %s version %d", def.Name, def.Version)}.Record(ctx, e.audit)
	return def, true, nil
}

// ServerKnown reports whether an OAuth server of that name is configured;
// an error when that cannot be told (the store failed).
type ServerKnown func(name string) (bool, error)

// parseChecked parses a definition and checks what Parse cannot: that
// every OAuth server a step names is known now.
func parseChecked(source []byte, filename string, known ServerKnown) (*flow.Definition, error) {
	def, err := flow.Parse(source, filename)
	if err != nil {
		return nil, err
	}
	found := map[string]bool{}
	for _, name := range def.Servers() {
		ok, err := known(name)
		if err != nil {
			return nil, fmt.Errorf("deploy flow %s: OAuth server %s: %w", def.Name, name, err)
		}
		found[name] = ok
	}
	if err := def.CheckServers(func(name string) bool { return found[name] }); err != nil {
		return nil, err
	}
	return def, nil
}

// parseDeployable is parseChecked against the servers configured now.
func (e *Engine) parseDeployable(ctx context.Context, source []byte, filename string) (*flow.Definition, error) {
	return parseChecked(source, filename, e.serverKnown(ctx))
}

// serverKnown knows the servers declared in the configuration the engine
// was given and those in the store (added through the admin API, or
// applied from the file by a server's start).
func (e *Engine) serverKnown(ctx context.Context) ServerKnown {
	return DeclaredOr(e.declared, StoredServers(ctx, e.st))
}

// StoredServers knows the OAuth servers st holds.
func StoredServers(ctx context.Context, st ServerLookup) ServerKnown {
	return func(name string) (bool, error) {
		switch _, err := st.GetOAuthServer(ctx, name); {
		case err == nil:
			return true, nil
		case errors.Is(err, store.ErrNotFound):
			return false, nil
		default:
			return false, err
		}
	}
}

// DeclaredOr knows the declared servers, and asks other (when not nil)
// about the rest.
func DeclaredOr(declared []string, other ServerKnown) ServerKnown {
	return func(name string) (bool, error) {
		if slices.Contains(declared, name) {
			return true, nil
		}
		if other == nil {
			return false, nil
		}
		return other(name)
	}
}

// Definition returns a flow's version, 0 meaning the latest;
// store.ErrNotFound when there is none.
func (e *Engine) Definition(ctx context.Context, name string, version int) (*flow.Definition, error) {
	now := e.flows.now()
	if def := e.flows.get(name, version, now); def != nil {
		return def, nil
	}
	v, err := e.st.GetFlow(ctx, name, version)
	if err != nil {
		return nil, err
	}
	def, err := e.flows.parse(v)
	if err != nil {
		return nil, err
	}
	if version == 0 {
		e.flows.put(def, now)
	}
	return def, nil
}

// listFlows pages through the latest version of every flow.
func (e *Engine) listFlows(ctx context.Context, p store.Page) ([]*flow.Definition, string, error) {
	vs, next, err := e.st.ListFlows(ctx, p)
	if err != nil {
		return nil, "", err
	}
	defs := make([]*flow.Definition, 0, len(vs))
	for _, v := range vs {
		def, err := e.flows.parse(v)
		if err != nil {
			return nil, "", err
		}
		defs = append(defs, def)
	}
	return defs, next, nil
}

func (c *flowCache) get(name string, version int, now time.Time) *flow.Definition {
	c.mu.Lock()
	defer c.mu.Unlock()
	if version > 0 {
		return c.versions[flowKey{name, version}]
	}
	l, ok := c.latest[name]
	if !ok || now.Sub(l.fetched) > c.ttl {
		return nil
	}
	return l.def
}

func (c *flowCache) put(def *flow.Definition, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.versions[flowKey{def.Name, def.Version}] = def
	if l, ok := c.latest[def.Name]; !ok || l.def.Version <= def.Version {
		c.latest[def.Name] = cachedLatest{def: def, fetched: now}
	}
}

// parse compiles a stored version, once per version.
func (c *flowCache) parse(v store.FlowVersion) (*flow.Definition, error) {
	c.mu.Lock()
	def := c.versions[flowKey{v.Name, v.Version}]
	c.mu.Unlock()
	if def != nil {
		return def, nil
	}
	def, err := flow.Parse(v.Source, v.Filename)
	if err != nil {
		// It was valid when deployed; a newer validation rule may refuse
		// it now. Running instances need it all the same, so say which.
		return nil, errors.Join(fmt.Errorf("flow %s version %d no longer parses", v.Name, v.Version), err)
	}
	def.Version = v.Version
	c.mu.Lock()
	c.versions[flowKey{v.Name, v.Version}] = def
	c.mu.Unlock()
	return def, nil
}
