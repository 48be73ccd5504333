package engine

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/store"
)

// Webhook limits.
const (
	// MaxWebhookBody is the largest body a webhook takes.
	MaxWebhookBody = 1 << 20
	// WebhookClockSkew is how far an hmac webhook's timestamp may be from
	// now, either way.
	WebhookClockSkew = 5 * time.Minute
	// githubReplayWindow is how long a GitHub signature is refused after
	// it was used: GitHub signs no timestamp, so a replay cannot be told
	// by its age.
	githubReplayWindow = 24 * time.Hour
)

// Webhook errors the API maps to statuses.
var (
	// ErrBadSignature: the signature is missing, malformed, wrong, too
	// old, or was used already (401, nothing started).
	ErrBadSignature = errors.New("bad signature")
	// ErrHookSecret: the webhook's secret is not set on this server.
	ErrHookSecret = errors.New("webhook secret not set")
	// ErrBadPayload: the body is not a JSON object the flow takes.
	ErrBadPayload = errors.New("bad payload")
)

// WebhookRequest is one POST /hooks/{flow}/{name}.
type WebhookRequest struct {
	Workflow string
	Hook     string
	Header   http.Header
	// Body is the request body, at most MaxWebhookBody bytes.
	Body []byte
}

// Webhook checks a webhook request's signature in constant time and
// starts an instance of the flow's latest version with the body as input,
// as the principal webhook:FLOW/NAME. A signature is taken once: the
// start records it in the instance's own transaction, and the same one
// again is ErrBadSignature. Fields the flow declares in input are checked
// as for any start; the rest of the payload is passed on as it came (a
// sender's payload is not the flow's to define).
//
// Errors: store.ErrNotFound (no such flow or webhook), ErrBadSignature,
// ErrHookSecret, ErrBadPayload, an input error.
func (e *Engine) Webhook(ctx context.Context, req WebhookRequest) (Started, error) {
	if e.stopping.Load() {
		return Started{}, ErrStopping
	}
	def, err := e.Definition(ctx, req.Workflow, 0)
	if err != nil {
		return Started{}, err
	}
	hook, ok := def.Webhook(req.Hook)
	if !ok {
		return Started{}, fmt.Errorf("%w: flow %s has no webhook %q", store.ErrNotFound, def.Name, req.Hook)
	}
	principal := "webhook:" + def.Name + "/" + hook.Name
	refuse := func(err error) (Started, error) {
		audit.Change{Event: audit.WebhookReceived, By: principal, Outcome: audit.OutcomeFailure,
			Detail: err.Error()}.Record(ctx, e.audit)
		return Started{}, err
	}
	secret, err := e.hookSecret(ctx, hook)
	if err != nil {
		return refuse(err)
	}
	sig, until, err := verifySignature(hook.Signature, secret, req.Header, req.Body, e.now())
	if err != nil {
		return refuse(err)
	}
	var body map[string]any
	if err := json.Unmarshal(req.Body, &body); err != nil || body == nil {
		return refuse(fmt.Errorf("%w: the body must be one JSON object", ErrBadPayload))
	}
	input, err := webhookInput(def, body)
	if err != nil {
		return refuse(err)
	}
	caller := Caller{User: flow.User{ID: principal, Kind: "webhook", Subject: def.Name + "/" + hook.Name, Roles: []string{}}}
	// The signature names the webhook too, so the same body signed for
	// another hook is its own.
	replay := &store.ReplayGuard{Key: def.Name + "/" + hook.Name + ":" + sig, Until: until}
	st, err := e.start(ctx, def, input, caller, 1, startGuards{replay: replay})
	if errors.Is(err, errGuardTaken) {
		return refuse(fmt.Errorf("%w: this signature was used already (a replay)", ErrBadSignature))
	}
	if err != nil {
		return Started{}, err
	}
	audit.Change{Event: audit.WebhookReceived, By: principal,
		Detail: "instance " + st.Instance.ID + " (" + def.Name + ")"}.Record(ctx, e.audit)
	return st, nil
}

// hookSecret reads the webhook's key: a named secret or an environment
// variable of this server.
func (e *Engine) hookSecret(ctx context.Context, h *flow.Webhook) ([]byte, error) {
	if h.SecretName != "" {
		v, err := e.st.GetNamedSecret(ctx, h.SecretName)
		if errors.Is(err, store.ErrNotFound) || (err == nil && len(v) == 0) {
			return nil, fmt.Errorf("%w: named secret %q is not set", ErrHookSecret, h.SecretName)
		}
		if err != nil {
			return nil, err
		}
		return v, nil
	}
	v, ok := e.getenv(h.SecretEnv)
	if !ok || v == "" {
		return nil, fmt.Errorf("%w: environment variable %s is not set on this server", ErrHookSecret, h.SecretEnv)
	}
	return []byte(v), nil
}

// verifySignature checks a request's signature and returns it (lower-case
// hex) with how long it is to be refused as a replay.
func verifySignature(scheme string, secret []byte, h http.Header, body []byte, now time.Time) (string, time.Time, error) {
	mac := hmac.New(sha256.New, secret)
	var header string
	var until time.Time
	switch scheme {
	case flow.SignatureGitHub:
		header = "X-Hub-Signature-256"
		mac.Write(body)
		until = now.Add(githubReplayWindow)
	case flow.SignatureHMAC:
		header = "X-Flowgate-Signature"
		ts := h.Get("X-Flowgate-Timestamp")
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("%w: X-Flowgate-Timestamp must be unix seconds", ErrBadSignature)
		}
		at := time.Unix(sec, 0)
		if d := now.Sub(at); d > WebhookClockSkew || d < -WebhookClockSkew {
			return "", time.Time{}, fmt.Errorf("%w: X-Flowgate-Timestamp is more than %s from now", ErrBadSignature, WebhookClockSkew)
		}
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(body)
		// After this a timestamp is refused anyway.
		until = at.Add(WebhookClockSkew + time.Minute)
	default:
		return "", time.Time{}, fmt.Errorf("%w: unknown scheme %q", ErrBadSignature, scheme)
	}
	v := h.Get(header)
	if v == "" {
		return "", time.Time{}, fmt.Errorf("%w: %s is missing", ErrBadSignature, header)
	}
	hexSig, ok := strings.CutPrefix(v, "sha256=")
	got, err := hex.DecodeString(hexSig)
	if !ok || err != nil || len(got) != sha256.Size {
		return "", time.Time{}, fmt.Errorf("%w: %s must be sha256=HEX", ErrBadSignature, header)
	}
	if !hmac.Equal(got, mac.Sum(nil)) {
		return "", time.Time{}, fmt.Errorf("%w: %s does not match the body", ErrBadSignature, header)
	}
	return hex.EncodeToString(got), until, nil
}

// webhookInput checks the fields the flow declares and keeps the rest of
// the payload as it came.
func webhookInput(def *flow.Definition, body map[string]any) (map[string]any, error) {
	declared := map[string]any{}
	for name := range def.Input {
		if v, ok := body[name]; ok {
			declared[name] = v
		}
	}
	checked, err := def.ValidateInput(declared)
	if err != nil {
		return nil, err
	}
	for k, v := range body {
		if _, ok := def.Input[k]; !ok {
			checked[k] = v
		}
	}
	return checked, nil
}
