package engine

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/vault"
)

// Vault is what the engine needs from the token vault (package vault): the
// OAuth steps and http's auth: get their tokens through it, so that one
// connection is refreshed once however many steps use it.
type Vault interface {
	Client(ctx context.Context, server string) (*connectors.Client, error)
	ServiceToken(ctx context.Context, server string, scopes []string) (vault.AccessToken, error)
	InvalidateService(server string)
	Token(ctx context.Context, principal, server string) (vault.AccessToken, error)
	ForceRefresh(ctx context.Context, principal, server string) (vault.AccessToken, error)
	Tokens(ctx context.Context, principal, server string) (connectors.Token, error)
	RefreshPresented(ctx context.Context, principal, server, presented string) (connectors.Token, bool, error)
}

// Status codes of the OAuth steps (docs/flows.md). A non-zero code does not fail
// the step: the flow decides.
const (
	statusOK               = 0
	statusUnknown          = -1
	statusNoConfiguration  = -2 // oauth_server_login, oauth_refresh
	statusNoScope          = -3 // oauth_server_login
	statusAborted          = -2 // oauth_user_login
	statusConnectionError  = -3 // oauth_user_login
	statusUnsupportedToken = -5 // oauth_user_login
	statusInputMissing     = -3 // oauth_refresh
)

// connectState is kept in the instance's sealed state while an
// oauth_user_login step waits for the user's browser.
type connectState struct {
	Server    string   `json:"server"`
	Scopes    []string `json:"scopes,omitempty"`
	UsePrompt bool     `json:"use_prompt"`
}

// evalScopes evaluates a step's scope: a space-separated string or a list;
// nil when the step gives none (the server's scopes apply).
func (r *runner) evalScopes(t *flow.Template) ([]string, error) {
	if t == nil {
		return nil, nil
	}
	v, err := t.Evaluate(&r.env)
	if err != nil {
		return nil, fmt.Errorf("scope: %w", err)
	}
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return strings.Fields(x), nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("scope: a list of strings is expected, found %T in it", e)
			}
			out = append(out, strings.Fields(s)...)
		}
		return out, nil
	case []string:
		return x, nil
	}
	return nil, fmt.Errorf("scope: a string or a list of strings is expected, not %T", v)
}

func oauthInput(server string, scopes []string) map[string]any {
	in := map[string]any{"server": server}
	if scopes != nil {
		in["scope"] = strings.Join(scopes, " ")
	}
	return in
}

// tokenOutput is the connector outputs of docs/flows.md for a token:
// refresh_token and instance_url only when there is one, so a flow can
// test for them.
func tokenOutput(t connectors.Token, now time.Time) map[string]any {
	scopes := t.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	out := map[string]any{
		"status_code":    statusOK,
		"access_token":   t.AccessToken,
		"token_type":     t.TokenType,
		"expires_in":     max(0, int64(t.Expiry.Sub(now).Round(time.Second)/time.Second)),
		"granted_scopes": scopes,
	}
	if t.RefreshToken != "" {
		out["refresh_token"] = t.RefreshToken
	}
	if t.InstanceURL != "" {
		out["instance_url"] = t.InstanceURL
	}
	return out
}

// statusOutput is a connector step's output when it got no token: the
// code and why (never a token: connectors' errors carry none).
func statusOutput(code int, why string) map[string]any {
	return map[string]any{"status_code": code, "error": why}
}

// endOAuthStep completes an OAuth step with out and moves on.
func (r *runner) endOAuthStep(i int, step *flow.Step, out map[string]any) {
	r.endRecord(i, step, store.StepCompleted, out, "")
	r.setOutput(step, out)
	r.inst.CurrentStep = r.def.After(step.ID)
}

// oauthClient returns the connectors client of server, or the status output
// saying why there is none.
func (e *Engine) oauthClient(ctx context.Context, server string, noConfig int) (*connectors.Client, map[string]any) {
	if e.vault == nil {
		return nil, statusOutput(noConfig, "OAuth connectors are not configured on this server")
	}
	c, err := e.vault.Client(ctx, server)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, statusOutput(noConfig, fmt.Sprintf("no OAuth server %q is configured", server))
	case connectors.KindOf(err) == connectors.KindConfig:
		return nil, statusOutput(noConfig, err.Error())
	case err != nil:
		return nil, statusOutput(statusUnknown, err.Error())
	}
	return c, nil
}

// runServerLogin is oauth_server_login: a client-credentials token of the
// server, shared with other steps through the vault's cache.
func (r *runner) runServerLogin(ctx context.Context, step *flow.Step) error {
	start := r.e.now()
	s := step.OAuthServerLogin
	scopes, err := r.evalScopes(s.Scope)
	if err != nil {
		return r.failStep(step, start, nil, err)
	}
	i := r.record(step, store.StepRunning, 1, start, oauthInput(s.Server, scopes))
	r.endOAuthStep(i, step, r.e.serverLogin(ctx, s.Server, scopes))
	return nil
}

func (e *Engine) serverLogin(ctx context.Context, server string, scopes []string) map[string]any {
	c, out := e.oauthClient(ctx, server, statusNoConfiguration)
	if out != nil {
		return out
	}
	if len(scopes) == 0 && len(c.Server().Scopes) == 0 {
		return statusOutput(statusNoScope, fmt.Sprintf("no scope: the step gives none and OAuth server %q has no scopes", server))
	}
	tok, err := e.vault.ServiceToken(ctx, server, scopes)
	if err != nil {
		switch connectors.KindOf(err) {
		case connectors.KindConfig:
			return statusOutput(statusNoConfiguration, err.Error())
		case connectors.KindInvalidScope:
			return statusOutput(statusNoScope, err.Error())
		}
		return statusOutput(statusUnknown, err.Error())
	}
	return tokenOutput(connectors.Token{AccessToken: tok.Token, TokenType: tok.TokenType, Expiry: tok.Expiry,
		Scopes: tok.Scopes, InstanceURL: tok.InstanceURL}, e.now())
}

// runRefresh is oauth_refresh: new tokens for a refresh token the flow
// holds. When that token is the one the starter's vault connection holds,
// the refresh goes through the vault, which stores the rotated token;
// otherwise the vault would be left with a used refresh token and the
// provider's reuse detection would end the grant.
func (r *runner) runRefresh(ctx context.Context, step *flow.Step) error {
	start := r.e.now()
	s := step.OAuthRefresh
	var presented string
	if s.RefreshToken != nil {
		v, err := s.RefreshToken.Evaluate(&r.env)
		if err != nil {
			return r.failStep(step, start, nil, err) // it names the field
		}
		presented, _ = v.(string)
	}
	i := r.record(step, store.StepRunning, 1, start, map[string]any{"server": s.Server})
	if presented == "" {
		r.endOAuthStep(i, step, statusOutput(statusInputMissing, "input missing: refresh_token is empty"))
		return nil
	}
	c, out := r.e.oauthClient(ctx, s.Server, statusNoConfiguration)
	if out != nil {
		r.endOAuthStep(i, step, out)
		return nil
	}
	tok, matched, err := r.e.vault.RefreshPresented(ctx, r.env.User.ID, s.Server, presented)
	if err == nil && !matched {
		tok, err = c.Refresh(ctx, presented)
	}
	if err != nil {
		code := statusUnknown
		if connectors.KindOf(err) == connectors.KindConfig {
			code = statusNoConfiguration
		}
		r.endOAuthStep(i, step, statusOutput(code, err.Error()))
		return nil
	}
	r.endOAuthStep(i, step, tokenOutput(tok, r.e.now()))
	return nil
}

// runUserLogin is oauth_user_login. A starter whose vault connection to
// the server is usable and covers the scopes goes on at once (the vault
// refreshes it as needed: that is what it is for); otherwise, or when the
// step asks for consent every time (use_prompt), the instance waits for
// the starter to sign in at the provider through /connect.
func (r *runner) runUserLogin(ctx context.Context, step *flow.Step) error {
	start := r.e.now()
	s := step.OAuthUserLogin
	scopes, err := r.evalScopes(s.Scope)
	if err != nil {
		return r.failStep(step, start, nil, err)
	}
	input := oauthInput(s.Server, scopes)
	if r.env.User.Kind != "user" {
		i := r.record(step, store.StepRunning, 1, start, input)
		r.endOAuthStep(i, step, statusOutput(statusUnknown,
			fmt.Sprintf("only a Flowgate user can sign in to an OAuth server; this instance was started by %s", r.env.User.ID)))
		return nil
	}
	c, out := r.e.oauthClient(ctx, s.Server, statusUnknown)
	if out != nil {
		i := r.record(step, store.StepRunning, 1, start, input)
		r.endOAuthStep(i, step, out)
		return nil
	}
	srv := c.Server()
	usePrompt := srv.UsePrompt
	if s.UsePrompt != nil {
		usePrompt = *s.UsePrompt
	}
	want := scopes
	if want == nil {
		want = srv.Scopes
	}
	if !usePrompt {
		tok, err := r.e.vault.Tokens(ctx, r.env.User.ID, s.Server)
		if err == nil && covers(tok.Scopes, want) {
			i := r.record(step, store.StepRunning, 1, start, input)
			r.endOAuthStep(i, step, tokenOutput(tok, r.e.now()))
			return nil
		}
	}
	r.record(step, store.StepWaiting, 1, start, input)
	r.st.Connect = &connectState{Server: s.Server, Scopes: scopes, UsePrompt: usePrompt}
	r.tasks = append(r.tasks, &store.Task{
		InstanceID: r.inst.ID, Workflow: r.inst.Workflow, StepID: step.ID, Seq: r.inst.Seq,
		Type: store.TaskTypeConnect, Title: "Sign in to " + s.Server, Assignees: []string{r.env.User.ID},
		ConnectURL: r.e.ConnectURL(r.inst.ID, step.ID), Status: store.TaskOpen, CreatedAt: start,
	})
	r.inst.Status = store.StatusWaiting
	r.inst.Owner = ""
	r.inst.LeaseUntil = time.Time{}
	if err := r.commit(ctx); err != nil {
		return err
	}
	r.e.notify(r.inst.ID)
	return errStop
}

// covers reports whether granted includes every scope of want.
func covers(granted, want []string) bool {
	if granted == nil && len(want) > 0 {
		return false
	}
	for _, w := range want {
		if !slices.Contains(granted, w) {
			return false
		}
	}
	return true
}

// ConnectURL is where a user goes to sign in for an oauth_user_login step.
func (e *Engine) ConnectURL(instanceID, stepID string) string {
	return e.publicURL + "/connect/" + url.PathEscape(instanceID) + "/" + url.PathEscape(stepID)
}

// PendingConnect is an oauth_user_login step waiting for its user: what
// /connect needs to send the browser to the provider.
type PendingConnect struct {
	InstanceID string
	StepID     string
	Seq        int
	TaskSerial int64
	// Principal is the instance's starter, who alone may sign in: the
	// tokens become theirs.
	Principal string
	Server    string
	// Scopes are the step's; nil means the server's.
	Scopes    []string
	UsePrompt bool
}

// ErrNotPending: the instance does not wait for a sign-in at that step
// (any more).
var ErrNotPending = errors.New("no sign-in is pending at this step")

// PendingConnect returns the sign-in an instance waits for at stepID. Only
// the starter may: anyone else, administrators included, gets
// store.ErrNotFound (an administrator's tokens must not become the
// starter's). ErrNotPending when the instance has moved on or ended.
func (e *Engine) PendingConnect(ctx context.Context, instanceID, stepID string, c Caller) (PendingConnect, error) {
	inst, err := e.st.GetInstance(ctx, instanceID)
	if err != nil {
		return PendingConnect{}, err
	}
	if !c.started(inst) {
		return PendingConnect{}, fmt.Errorf("instance %s: %w", instanceID, store.ErrNotFound)
	}
	if inst.Status != store.StatusWaiting || inst.CurrentStep != stepID {
		return e.pendingReconnect(ctx, inst, stepID)
	}
	r, err := e.loadRunner(ctx, inst)
	if err != nil {
		return PendingConnect{}, err
	}
	if r.st.Connect == nil {
		return PendingConnect{}, fmt.Errorf("instance %s, step %q: %w", instanceID, stepID, ErrNotPending)
	}
	tasks, _, err := e.st.ListTasks(ctx, store.TaskFilter{All: true, InstanceID: inst.ID, Status: store.TaskOpen}, store.Page{Limit: store.MaxLimit})
	if err != nil {
		return PendingConnect{}, err
	}
	p := PendingConnect{InstanceID: inst.ID, StepID: stepID, Seq: inst.Seq, Principal: inst.StartedBy,
		Server: r.st.Connect.Server, Scopes: r.st.Connect.Scopes, UsePrompt: r.st.Connect.UsePrompt}
	for _, t := range tasks {
		if t.Type == store.TaskTypeConnect && t.StepID == stepID && t.Seq == inst.Seq {
			p.TaskSerial = t.Serial
		}
	}
	if p.TaskSerial == 0 {
		return PendingConnect{}, fmt.Errorf("instance %s, step %q: %w", instanceID, stepID, ErrNotPending)
	}
	return p, nil
}

// pendingReconnect is the sign-in of a reconnect link (Seq 0): an http
// step found the starter's connection missing or refused, and the
// instance went on without it.
func (e *Engine) pendingReconnect(ctx context.Context, inst store.Instance, stepID string) (PendingConnect, error) {
	notPending := fmt.Errorf("instance %s is %s at step %q: %w", inst.ID, inst.Status, inst.CurrentStep, ErrNotPending)
	tasks, _, err := e.st.ListTasks(ctx, store.TaskFilter{All: true, InstanceID: inst.ID, Status: store.TaskOpen}, store.Page{Limit: store.MaxLimit})
	if err != nil {
		return PendingConnect{}, err
	}
	var serial int64
	for _, t := range tasks {
		if t.Type == store.TaskTypeConnect && t.StepID == stepID && t.Seq == 0 {
			serial = t.Serial
		}
	}
	if serial == 0 {
		return PendingConnect{}, notPending
	}
	def, err := e.Definition(ctx, inst.Workflow, inst.Version)
	if err != nil {
		return PendingConnect{}, err
	}
	step, ok := def.Step(stepID)
	if !ok || step.HTTP == nil || step.HTTP.Auth == nil {
		return PendingConnect{}, notPending
	}
	p := PendingConnect{InstanceID: inst.ID, StepID: stepID, TaskSerial: serial, Principal: inst.StartedBy, Server: step.HTTP.Auth.Server}
	if e.vault != nil {
		if c, err := e.vault.Client(ctx, p.Server); err == nil {
			p.UsePrompt = c.Server().UsePrompt
		}
	}
	return p, nil
}

// ConnectResult is how a sign-in ended, for FinishConnect.
type ConnectResult struct {
	PendingConnect
	// Token is set on success; the caller has saved it in the vault.
	Token *connectors.Token
	// Status is the step's status code when Token is nil:
	// -1 unknown, -2 aborted by the user, -3 connection error, -5
	// unsupported token type.
	Status int
	// Error says why, without secrets.
	Error string
}

// ConnectStatus maps a failed exchange (or the provider's error
// parameter) to oauth_user_login's status code.
func ConnectStatus(err error) int {
	switch connectors.KindOf(err) {
	case connectors.KindAccessDenied:
		return statusAborted
	case connectors.KindUnreachable:
		return statusConnectionError
	case connectors.KindUnsupportedTokenType:
		return statusUnsupportedToken
	}
	return statusUnknown
}

// FinishConnect ends the oauth_user_login step an instance waits at with
// the sign-in's outcome, closes its connect task and runs the instance on,
// on this server. ErrNotPending when the instance has moved on (a second
// callback, a cancel).
func (e *Engine) FinishConnect(ctx context.Context, res ConnectResult) error {
	if e.stopping.Load() {
		return ErrStopping
	}
	if res.Seq == 0 {
		// A reconnect link: the connection is what it was for. A failed
		// sign-in leaves the link open, for another try.
		if res.Token == nil {
			return nil
		}
		err := e.st.CloseTask(ctx, store.TaskAct{Serial: res.TaskSerial, Action: "connected", ActedBy: res.Principal, At: e.now()})
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("task %d: %w", res.TaskSerial, ErrNotPending)
		}
		return err
	}
	inst, err := e.st.GetInstance(ctx, res.InstanceID)
	if err != nil {
		return err
	}
	if inst.Status != store.StatusWaiting || inst.Seq != res.Seq || inst.CurrentStep != res.StepID {
		return fmt.Errorf("instance %s: %w", res.InstanceID, ErrNotPending)
	}
	r, err := e.loadRunner(ctx, inst)
	if err != nil {
		return err
	}
	step, ok := r.def.Step(res.StepID)
	if !ok || step.Type != flow.TypeOAuthUserLogin || r.st.Connect == nil {
		return fmt.Errorf("instance %s, step %q: %w", res.InstanceID, res.StepID, ErrNotPending)
	}
	now := e.now()
	var out map[string]any
	action := "connected"
	if t := res.Token; t != nil {
		out = tokenOutput(*t, now)
	} else {
		out = statusOutput(res.Status, res.Error)
		action = "failed"
		if res.Status == statusAborted {
			action = "aborted"
		}
	}
	r.st.Connect = nil
	r.pending = append(r.pending, r.parkedRecord(step, store.StepCompleted, out))
	r.setOutput(step, out)
	r.act = &store.TaskAct{Serial: res.TaskSerial, Action: action, ActedBy: res.Principal, At: now}
	r.inst.CurrentStep = r.def.After(step.ID)
	r.inst.Status = store.StatusRunning
	r.inst.Owner = e.owner
	if err := e.commitClaim(ctx, r); err != nil {
		if errors.Is(err, ErrTaskClosed) {
			return fmt.Errorf("instance %s: %w", res.InstanceID, ErrNotPending)
		}
		return err
	}
	r.start()
	return nil
}
