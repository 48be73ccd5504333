package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/dpop"
	"github.com/flowgate/flowgate/internal/egress"
	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/tracing"
	"github.com/flowgate/flowgate/internal/vault"
)

// maxBackoff caps an http step's growing retry backoff.
const maxBackoff = time.Hour

// newHTTPClient is the http steps' client: every connection, redirects
// included, dialled through the egress policy.
func newHTTPClient(policy *egress.Policy, tr *tracing.Tracing) *http.Client {
	if policy == nil {
		policy = egress.Default()
	}
	t := policy.Transport()
	t.MaxIdleConnsPerHost = 32
	t.ResponseHeaderTimeout = 0 // the step's timeout bounds the whole exchange
	return &http.Client{
		// With tracing on, each request is a span and carries its
		// traceparent to the API it calls.
		Transport: tr.Transport(t),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("more than 5 redirects")
			}
			// A flow's headers (an API key, an Authorization header)
			// must not follow a redirect to another host.
			if req.URL.Host != via[0].URL.Host {
				req.Header.Del("Authorization")
				req.Header.Del("Cookie")
			}
			return nil
		},
	}
}

// httpRequest is a step's request once its templates are evaluated.
type httpRequest struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    any               `json:"body,omitempty"`
	Form    map[string]any    `json:"form,omitempty"`
	// Auth says whose token goes with the request (server and as), for
	// the monitor; the token itself is bearer, never recorded.
	Auth string `json:"auth,omitempty"`

	hasBody bool
	bearer  string
	// dpop, for a server with dpop, makes the proof that goes with the
	// token (RFC 9449 §7), which is then sent with the DPoP scheme.
	dpop *dpop.Prover
	// depth is the sending instance's, for DepthHeader.
	depth int
}

// runHTTP runs one attempt of an http step: the start is committed before
// the request goes out, the end right after the answer. A network error or
// a 5xx answer is retried through the queue while attempts remain, then
// fails the instance; any other answer completes the step with it.
func (r *runner) runHTTP(ctx context.Context, step *flow.Step) error {
	h := step.HTTP
	attempt, visit := 1, 0
	if rs := r.st.Retry; rs != nil && rs.Step == step.ID {
		attempt, visit = rs.Attempt+1, rs.Visit
	}
	start := r.e.now()
	req, err := r.buildRequest(h)
	if err != nil {
		return r.failStep(step, start, nil, err)
	}
	if h.Auth != nil {
		req.Auth = h.Auth.Server + " as " + h.Auth.As
	}
	req.depth = r.inst.Depth
	if r.e.stopping.Load() {
		// Release the instance rather than start an effect this server
		// may not live to record; another server (or this one after a
		// restart) takes it over at once.
		r.inst.Owner = ""
		r.inst.LeaseUntil = time.Time{}
		if err := r.commit(ctx); err != nil {
			return err
		}
		return errStop
	}
	i := r.record(step, store.StepRunning, attempt, start, maskRequest(req))
	if visit == 0 {
		visit = r.pending[i].Seq
	}
	r.inst.Status = store.StatusRunning
	r.inst.Owner = r.e.owner
	if err := r.commit(ctx); err != nil {
		return err
	}
	// After the commit the record is no longer pending; rebuild it for the
	// end, keeping seq, attempt and start.
	rec := store.StepRecord{InstanceID: r.inst.ID, Seq: r.inst.Seq, StepID: step.ID, Type: string(step.Type),
		Status: store.StepRunning, Attempt: attempt, StartedAt: start, Input: r.recordJSON(maskRequest(req))}
	r.pending = append(r.pending, rec)
	i = len(r.pending) - 1

	key := r.inst.ID + "." + step.ID + "." + strconv.Itoa(visit)
	var out map[string]any
	if h.Auth != nil {
		var login bool
		out, login, err = r.sendWithAuth(ctx, h, req, key)
		if login {
			r.addReconnectTask(ctx, step)
		}
	} else {
		out, err = r.e.send(ctx, req, h.Timeout, key)
	}
	if err == nil && out["status"].(int) >= 500 {
		err = fmt.Errorf("the server answered %d", out["status"])
	}
	if err != nil {
		if attempt < max(h.Retry.Attempts, 1) {
			r.endRecord(i, step, store.StepFailed, out, err.Error())
			r.st.Retry = &retryState{Step: step.ID, Attempt: attempt, Visit: visit}
			return r.parkUntil(ctx, r.e.now().Add(backoff(h.Retry.Backoff, attempt)))
		}
		if attempt > 1 {
			err = fmt.Errorf("%w (attempt %d of %d)", err, attempt, h.Retry.Attempts)
		}
		r.endRecord(i, step, store.StepFailed, out, err.Error())
		if st, _ := out["status"].(int); st >= 500 {
			err = &stepFailure{kind: errTypeHTTPStatus, status: st, err: err}
		} else {
			err = &stepFailure{kind: errTypeNetwork, err: err}
		}
		return r.caughtCommit(ctx, r.stepFailed(ctx, step, err))
	}
	r.st.Retry = nil
	if st, _ := out["status"].(int); h.FailOnStatus && (st < 200 || st > 299) {
		// fail_on_status: an answer outside 2xx (4xx, or -1 when auth had
		// no token) fails the step rather than being data.
		msg := fmt.Sprintf("the server answered %d (fail_on_status)", st)
		if st == -1 {
			msg = fmt.Sprintf("no token could be had (fail_on_status): %v", out["error"])
		}
		r.endRecord(i, step, store.StepFailed, out, msg)
		f := &stepFailure{kind: errTypeHTTPStatus, status: st, err: errors.New(msg)}
		if st == -1 {
			f = &stepFailure{kind: errTypeAuth, err: errors.New(msg)}
		}
		return r.caughtCommit(ctx, r.stepFailed(ctx, step, f))
	}
	r.endRecord(i, step, store.StepCompleted, out, "")
	r.setOutput(step, out)
	r.inst.CurrentStep = r.def.After(step.ID)
	// Record the answer now: a crash after an effect must not repeat it.
	return r.commit(ctx)
}

func backoff(base time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

func (r *runner) buildRequest(h *flow.HTTP) (*httpRequest, error) {
	u, err := h.URL.EvaluateString(&r.env)
	if err != nil {
		return nil, err
	}
	if err := flow.CheckURL(u); err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	if len(h.Query) > 0 {
		q, err := flow.EvaluateMap(h.Query, &r.env)
		if err != nil {
			return nil, err
		}
		pu, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("url: %w", err)
		}
		vals := pu.Query()
		for k, v := range q {
			addValues(vals, k, v)
		}
		pu.RawQuery = vals.Encode()
		u = pu.String()
	}
	req := &httpRequest{Method: h.Method, URL: u}
	if len(h.Headers) > 0 {
		req.Headers = make(map[string]string, len(h.Headers))
		for k, t := range h.Headers {
			v, err := t.EvaluateString(&r.env)
			if err != nil {
				return nil, err
			}
			req.Headers[k] = v
		}
	}
	switch {
	case h.HasBody:
		if req.Body, err = flow.EvaluateTree(h.Body, &r.env); err != nil {
			return nil, err
		}
		req.hasBody = true
	case h.Form != nil:
		if req.Form, err = flow.EvaluateMap(h.Form, &r.env); err != nil {
			return nil, err
		}
	}
	return req, nil
}

func addValues(vals url.Values, k string, v any) {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			vals.Add(k, formatValue(e))
		}
	case []string:
		for _, e := range x {
			vals.Add(k, e)
		}
	default:
		vals.Add(k, formatValue(v))
	}
}

func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// maskRequest is the request as the monitor shows it: header values that
// carry credentials are masked.
func maskRequest(req *httpRequest) *httpRequest {
	if len(req.Headers) == 0 {
		return req
	}
	m := *req
	m.Headers = make(map[string]string, len(req.Headers))
	for k, v := range req.Headers {
		if sensitiveHeader(k) {
			v = "****"
		}
		m.Headers[k] = v
	}
	return &m
}

func sensitiveHeader(name string) bool {
	n := strings.ToLower(name)
	return n == "authorization" || n == "proxy-authorization" || n == "cookie" ||
		strings.Contains(n, "api-key") || strings.Contains(n, "apikey") || strings.Contains(n, "token") || strings.Contains(n, "secret")
}

// send performs the request and returns the step's output: status,
// headers, body (parsed when JSON). A nil error with a status says the
// server answered; an error with no output is a network failure.
func (e *Engine) send(ctx context.Context, req *httpRequest, timeout time.Duration, idemKey string) (map[string]any, error) {
	out, err := e.sendOnce(ctx, req, timeout, idemKey)
	if err != nil || req.dpop == nil || out["status"] != http.StatusUnauthorized {
		return out, err
	}
	// An API that wants a DPoP nonce says so with a 401 naming
	// use_dpop_nonce (RFC 9449 §9); the nonce it sent is remembered by
	// now, and one more try carries it.
	if h, _ := out["headers"].(map[string]any); h != nil {
		if ch, _ := h["www-authenticate"].(string); strings.Contains(ch, dpop.CodeUseNonce) {
			return e.sendOnce(ctx, req, timeout, idemKey)
		}
	}
	return out, nil
}

func (e *Engine) sendOnce(ctx context.Context, req *httpRequest, timeout time.Duration, idemKey string) (map[string]any, error) {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	contentType := ""
	switch {
	case req.hasBody:
		b, err := json.Marshal(req.Body)
		if err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
		body, contentType = bytes.NewReader(b), "application/json"
	case req.Form != nil:
		vals := url.Values{}
		for k, v := range req.Form {
			addValues(vals, k, v)
		}
		body, contentType = strings.NewReader(vals.Encode()), "application/x-www-form-urlencoded"
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, req.URL, body)
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	if contentType != "" {
		hr.Header.Set("Content-Type", contentType)
	}
	hr.Header.Set("Accept", "application/json, */*;q=0.5")
	hr.Header.Set("User-Agent", "Flowgate")
	hr.Header.Set("Idempotency-Key", idemKey)
	for k, v := range req.Headers {
		hr.Header.Set(k, v)
	}
	// After the flow's headers, so that no flow can claim to be shallower
	// than it is and start itself without end through Flowgate's API.
	hr.Header.Set(DepthHeader, strconv.Itoa(max(req.depth, 1)))
	switch {
	case req.bearer != "" && req.dpop != nil:
		proof, err := req.dpop.Proof(req.Method, req.URL, req.bearer)
		if err != nil {
			return nil, fmt.Errorf("DPoP proof: %w", err)
		}
		hr.Header.Set("Authorization", "DPoP "+req.bearer)
		hr.Header.Set(dpop.Header, proof)
	case req.bearer != "":
		hr.Header.Set("Authorization", "Bearer "+req.bearer)
	}
	resp, err := e.client.Do(hr)
	if err != nil {
		return nil, networkError(err, timeout)
	}
	defer resp.Body.Close()
	if req.dpop != nil {
		req.dpop.SetNonce(req.URL, resp.Header.Get(dpop.NonceHeader))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, networkError(err, timeout)
	}
	if len(data) > maxResponseBytes {
		return nil, fmt.Errorf("the response body is larger than %d bytes", maxResponseBytes)
	}
	headers := make(map[string]any, len(resp.Header))
	for k, v := range resp.Header {
		if len(v) == 1 {
			headers[strings.ToLower(k)] = v[0]
		} else {
			headers[strings.ToLower(k)] = v
		}
	}
	out := map[string]any{"status": resp.StatusCode, "headers": headers, "body": parseBody(resp.Header.Get("Content-Type"), data)}
	return out, nil
}

func parseBody(contentType string, data []byte) any {
	if len(data) == 0 {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/json" || strings.HasSuffix(mt, "+json") {
		var v any
		if json.Unmarshal(data, &v) == nil {
			return v
		}
	}
	return string(data)
}

func networkError(err error, timeout time.Duration) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("no answer within %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// A refusal says so plainly, without the dialer's wrapping.
		var denied *egress.DeniedError
		if errors.As(ue.Err, &denied) {
			return fmt.Errorf("%s %s: %w", ue.Op, ue.URL, denied)
		}
		return fmt.Errorf("%s %s: %w", ue.Op, ue.URL, ue.Err)
	}
	return err
}

// sendWithAuth sends an http step's request with the token its auth:
// names. A 401 answer gets one fresh token and one more try: the token may
// have been revoked or expired early. Without a connection, or when the
// connection needs the user to sign in again, no request goes out and the
// output's status is -1 with the reason (docs/flows.md: the flow decides); a
// provider that cannot be reached counts as a failed attempt, retried by
// the step's retry policy.
//
// login reports that the starter must sign in (again) at the server: no
// connection, or one the provider refused to refresh.
func (r *runner) sendWithAuth(ctx context.Context, h *flow.HTTP, req *httpRequest, key string) (out map[string]any, login bool, err error) {
	tok, err := r.e.authToken(ctx, h.Auth, r.env.User.ID, false)
	if err != nil {
		if transientAuth(err) {
			return nil, false, fmt.Errorf("auth: %w", err)
		}
		login = h.Auth.As == flow.AuthAsStarter && (errors.Is(err, vault.ErrNotConnected) || errors.Is(err, vault.ErrReconnectRequired))
		return map[string]any{"status": -1, "error": "auth: " + err.Error()}, login, nil
	}
	r.learnSecret(tok)
	req.bearer = tok
	if c, cerr := r.e.vault.Client(ctx, h.Auth.Server); cerr == nil {
		req.dpop = c.DPoP()
	}
	out, err = r.e.send(ctx, req, h.Timeout, key)
	if err != nil || out["status"].(int) != http.StatusUnauthorized {
		return out, false, err
	}
	if tok, err = r.e.authToken(ctx, h.Auth, r.env.User.ID, true); err != nil {
		// No better token: the 401 stands as the answer.
		login = h.Auth.As == flow.AuthAsStarter && errors.Is(err, vault.ErrReconnectRequired)
		return out, login, nil
	}
	r.learnSecret(tok)
	req.bearer = tok
	out, err = r.e.send(ctx, req, h.Timeout, key)
	return out, false, err
}

// addReconnectTask puts a link in the starter's worklist to sign in again
// at an http step's server: one open link per user and server, however
// many steps found the connection missing. The link completes the
// connection only; the instance has gone on with status -1 (docs/flows.md), so
// the flow decides what that step's failure means.
func (r *runner) addReconnectTask(ctx context.Context, step *flow.Step) {
	if r.env.User.Kind != "user" {
		return // a client or an external identity has no browser session here
	}
	title := reconnectTitle(step.HTTP.Auth.Server)
	for _, t := range r.tasks {
		if t.Type == store.TaskTypeConnect && t.Title == title {
			return
		}
	}
	open, _, err := r.e.st.ListTasks(ctx, store.TaskFilter{Assignees: []string{r.env.User.ID}, Status: store.TaskOpen}, store.Page{Limit: store.MaxLimit})
	if err != nil {
		r.e.log.Warn("flow engine: listing tasks for a reconnect link", "instance", r.inst.ID, "err", err)
		return
	}
	for _, t := range open {
		if t.Type == store.TaskTypeConnect && t.Seq == 0 && t.Title == title {
			return
		}
	}
	r.tasks = append(r.tasks, &store.Task{
		InstanceID: r.inst.ID, Workflow: r.inst.Workflow, StepID: step.ID, Seq: 0,
		Type: store.TaskTypeConnect, Title: title, Assignees: []string{r.env.User.ID},
		ConnectURL: r.e.ConnectURL(r.inst.ID, step.ID), Status: store.TaskOpen, CreatedAt: r.e.now(),
	})
}

func reconnectTitle(server string) string { return ReconnectTitle(server) }

// ReconnectTitle is the title of the worklist's task that signs the
// starter in again to server after the provider refused the connection.
func ReconnectTitle(server string) string { return "Reconnect to " + server }

// authToken returns the access token of auth: the starter's from the
// vault, or the server's own (client credentials). fresh asks for a new
// one rather than the cached one.
func (e *Engine) authToken(ctx context.Context, a *flow.HTTPAuth, starter string, fresh bool) (string, error) {
	if e.vault == nil {
		return "", errors.New("OAuth connectors are not configured on this server")
	}
	if a.As == flow.AuthAsService {
		if fresh {
			e.vault.InvalidateService(a.Server)
		}
		t, err := e.vault.ServiceToken(ctx, a.Server, nil)
		return t.Token, err
	}
	get := e.vault.Token
	if fresh {
		get = e.vault.ForceRefresh
	}
	t, err := get(ctx, starter, a.Server)
	return t.Token, err
}

// transientAuth reports whether a token failure may pass by itself: the
// provider unreachable, or the vault backing off after such failures.
func transientAuth(err error) bool {
	var b *vault.BackoffError
	return errors.As(err, &b) || connectors.KindOf(err) == connectors.KindUnreachable
}
