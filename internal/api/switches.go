package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/flowgate/flowgate/internal/config"
)

// The switch names of the configuration's apis section, as Switch takes them and as the admin
// API shows them.
const (
	SwitchWorkflow  = "workflow"
	SwitchInvoke    = "invoke"
	SwitchBasicAuth = "basic_auth"
	SwitchOData     = "odata"
	SwitchSCIM      = "scim"
)

// switchPrefix namespaces the switches in the store's settings table.
const switchPrefix = "api."

// Switches are the API switches of the configuration's apis section.
type Switches struct {
	Workflow  bool `json:"workflow"`
	Invoke    bool `json:"invoke"`
	BasicAuth bool `json:"basic_auth"`
	OData     bool `json:"odata"`
	SCIM      bool `json:"scim"`
}

// defaultSwitches are the configuration defaults, used until the store has
// been read once.
func defaultSwitches() Switches { return Switches{Workflow: true, Invoke: true, OData: true} }

func (s Switches) get(name string) bool {
	switch name {
	case SwitchWorkflow:
		return s.Workflow
	case SwitchInvoke:
		return s.Invoke
	case SwitchBasicAuth:
		return s.BasicAuth
	case SwitchOData:
		return s.OData
	case SwitchSCIM:
		return s.SCIM
	}
	return false
}

// switchCache keeps the switches in memory for a short while, so that the
// hot path of every workflow request does not read the database, while
// several servers on one database still converge within refresh.
type switchCache struct {
	refresh time.Duration

	mu       sync.Mutex
	vals     Switches
	loadedAt time.Time // zero until the first successful read
	nextLoad time.Time
	loading  bool
}

func newSwitchCache(refresh time.Duration) *switchCache {
	return &switchCache{refresh: refresh, vals: defaultSwitches()}
}

// set stores values just written, so this server sees its own change at
// once.
func (c *switchCache) set(v Switches) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.vals, c.loadedAt, c.nextLoad = v, now, now.Add(c.refresh)
}

// current returns the switches, reading the store when the cached values
// are stale. One request refreshes while the others keep using the
// previous values; only before the first successful read does every
// request read the store itself. A store that cannot be read keeps the
// last known values (logged), retried a second later.
func (a *API) current(ctx context.Context) Switches {
	c := a.switches
	c.mu.Lock()
	now := time.Now()
	if now.Before(c.nextLoad) || (c.loading && !c.loadedAt.IsZero()) {
		v := c.vals
		c.mu.Unlock()
		return v
	}
	c.loading = true
	c.mu.Unlock()

	// The request's own cancellation must not poison the cache for
	// everyone, so the read gets its own short deadline.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	v, err := a.loadSwitches(rctx)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.loading = false
	if err != nil {
		a.log.WarnContext(ctx, "API switches could not be read; keeping the last known values", "err", err)
		c.nextLoad = time.Now().Add(min(time.Second, c.refresh))
		return c.vals
	}
	c.vals, c.loadedAt, c.nextLoad = v, time.Now(), time.Now().Add(c.refresh)
	return v
}

// loadSwitches reads the switches from the store; a switch never written
// has its configuration default.
func (a *API) loadSwitches(ctx context.Context) (Switches, error) {
	m, err := a.st.ListSettings(ctx, switchPrefix)
	if err != nil {
		return Switches{}, fmt.Errorf("read API switches: %w", err)
	}
	v := defaultSwitches()
	for name, dst := range map[string]*bool{SwitchWorkflow: &v.Workflow, SwitchInvoke: &v.Invoke, SwitchBasicAuth: &v.BasicAuth,
		SwitchOData: &v.OData, SwitchSCIM: &v.SCIM} {
		if s, ok := m[switchPrefix+name]; ok {
			b, err := strconv.ParseBool(s)
			if err != nil {
				return Switches{}, fmt.Errorf("API switch %s: stored value %q is not a boolean", name, s)
			}
			*dst = b
		}
	}
	return v, nil
}

// byName is v as the switches' names and values.
func (v Switches) byName() map[string]bool {
	return map[string]bool{SwitchWorkflow: v.Workflow, SwitchInvoke: v.Invoke, SwitchBasicAuth: v.BasicAuth,
		SwitchOData: v.OData, SwitchSCIM: v.SCIM}
}

// storeSwitches writes every switch, audited as changed by by (each
// that differs from cur; by "" for the configuration's values at start),
// and updates this server's cache.
func (a *API) storeSwitches(ctx context.Context, by string, cur, v Switches) error {
	if err := a.changes.SetSwitches(ctx, by, switchPrefix, cur.byName(), v.byName()); err != nil {
		return err
	}
	a.switches.set(v)
	return nil
}

// SeedSwitches writes the configuration's apis section to the store at
// start. The configuration wins at start: a switch changed through the
// admin API lasts until the next start of a server, which writes its file's
// values again (with several servers, the last one started). Call it once,
// after the store is open and before serving.
func (a *API) SeedSwitches(ctx context.Context, apis config.APIs) error {
	v := Switches{Workflow: apis.Workflow, Invoke: apis.Invoke, BasicAuth: apis.BasicAuth, OData: apis.OData, SCIM: apis.SCIM}
	return a.storeSwitches(ctx, "", v, v)
}

// Switch passes requests to next while the named API is switched on
// (SwitchWorkflow or SwitchInvoke) and answers 403 api_disabled while it
// is off. It panics on an unknown name, a wiring mistake.
func (a *API) Switch(name string, next http.Handler) http.Handler {
	if !knownSwitch(name) {
		panic("api: unknown API switch " + strconv.Quote(name))
	}
	desc := "the " + name + " API is disabled (an administrator can switch it on: PUT /api/v1/admin/api-switches)"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.current(r.Context()).get(name) {
			writeError(w, http.StatusForbidden, "api_disabled", desc, "")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func knownSwitch(name string) bool {
	switch name {
	case SwitchWorkflow, SwitchInvoke, SwitchBasicAuth, SwitchOData, SwitchSCIM:
		return true
	}
	return false
}

// SwitchOn reports whether the named API is switched on now (cached as
// for Switch), for APIs outside this package that answer a switched-off
// request in their own error format. It panics on an unknown name.
func (a *API) SwitchOn(ctx context.Context, name string) bool {
	if !knownSwitch(name) {
		panic("api: unknown API switch " + strconv.Quote(name))
	}
	return a.current(ctx).get(name)
}

func (a *API) getSwitches(w http.ResponseWriter, r *http.Request) {
	// Read the store, not the cache: the admin sees what every server
	// converges to.
	v, err := a.loadSwitches(r.Context())
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// putSwitches sets the switches given in the body; absent ones keep their
// value.
func (a *API) putSwitches(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Workflow  *bool `json:"workflow"`
		Invoke    *bool `json:"invoke"`
		BasicAuth *bool `json:"basic_auth"`
		OData     *bool `json:"odata"`
		SCIM      *bool `json:"scim"`
	}
	if !decode(w, r, &in) {
		return
	}
	set := map[string]bool{}
	for name, v := range map[string]*bool{SwitchWorkflow: in.Workflow, SwitchInvoke: in.Invoke, SwitchBasicAuth: in.BasicAuth, SwitchOData: in.OData, SwitchSCIM: in.SCIM} {
		if v != nil {
			set[name] = *v
		}
	}
	if _, err := a.SetAPISwitches(r.Context(), actor(r), set); err != nil {
		a.serverError(w, r, err)
		return
	}
	v, err := a.loadSwitches(r.Context())
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// APISwitches reads the switches from the store (not this server's
// cache: an administrator sees what every server converges to), by name.
func (a *API) APISwitches(ctx context.Context) (map[string]bool, error) {
	v, err := a.loadSwitches(ctx)
	if err != nil {
		return nil, err
	}
	return v.byName(), nil
}

// SetAPISwitches turns the named switches on or off (the others keep
// their value), audited as changed by by; the admin API and the
// management site both change them here. It returns every switch's value.
// An unknown name is an error and changes nothing.
func (a *API) SetAPISwitches(ctx context.Context, by string, set map[string]bool) (map[string]bool, error) {
	cur, err := a.loadSwitches(ctx)
	if err != nil {
		return nil, err
	}
	v := cur
	dst := map[string]*bool{SwitchWorkflow: &v.Workflow, SwitchInvoke: &v.Invoke, SwitchBasicAuth: &v.BasicAuth,
		SwitchOData: &v.OData, SwitchSCIM: &v.SCIM}
	for name := range set {
		if dst[name] == nil {
			return nil, fmt.Errorf("%q is not an API switch", name)
		}
	}
	for name, on := range set {
		*dst[name] = on
	}
	if err := a.storeSwitches(ctx, by, cur, v); err != nil {
		return nil, err
	}
	a.log.InfoContext(ctx, "API switches changed", "workflow", v.Workflow, "invoke", v.Invoke, "basic_auth", v.BasicAuth, "odata", v.OData, "scim", v.SCIM)
	return v.byName(), nil
}
