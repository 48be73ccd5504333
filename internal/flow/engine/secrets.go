package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/store"
)

// minMaskLen is the shortest value masked wherever it appears (see
// flow.MinSecretLen). Named secrets that short are refused when they are
// set; tokens are never that short, and a token output is masked by its
// key regardless.
const minMaskLen = flow.MinSecretLen

// mask is what a record shows instead of a secret.
const mask = "****"

// learnSecret adds a value that came from a secret source (a named
// secret, a connector token output, a vault token sent with auth:) to
// the instance's secret values. From then on every record, error, log
// line, and the vars and output the API shows have it masked. The list
// lives in the sealed resume state, so a resumed or taken-over run masks
// what the runs before it learned.
func (r *runner) learnSecret(v string) {
	if len(v) < minMaskLen || slices.Contains(r.st.Secrets, v) {
		return
	}
	r.st.Secrets = append(r.st.Secrets, v)
	r.masker = nil
}

// masker replaces the instance's secret values in text and in JSON.
type masker struct {
	// text replaces every form of every value, longest first, so that a
	// value inside another is not half-masked.
	text *strings.Replacer
	// inJSON are the forms as they appear inside an encoded JSON string,
	// to tell cheaply whether a document needs masking at all.
	inJSON [][]byte
}

// secretForms are the ways a value shows up in what a step records: as
// it is; URL-encoded in a query or a form body (both encodings of a
// space); JSON-escaped inside a JSON text held in a string (a body that
// was not parsed, an error quoting one), with and without HTML escaping.
func secretForms(v string) []string {
	forms := []string{v, url.QueryEscape(v), url.PathEscape(v), jsonEscape(v, false), jsonEscape(v, true)}
	slices.Sort(forms)
	return slices.Compact(forms)
}

// jsonEscape is v as it appears between the quotes of a JSON string.
func jsonEscape(v string, html bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	_ = enc.Encode(v) // a string always encodes
	s := strings.TrimSuffix(b.String(), "\n")
	return s[1 : len(s)-1]
}

func (r *runner) getMasker() *masker {
	if r.masker != nil || len(r.st.Secrets) == 0 {
		return r.masker
	}
	var forms []string
	for _, v := range r.st.Secrets {
		forms = append(forms, secretForms(v)...)
	}
	slices.SortFunc(forms, func(a, b string) int { return len(b) - len(a) })
	forms = slices.Compact(forms)
	m := &masker{}
	pairs := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		pairs = append(pairs, f, mask)
		m.inJSON = append(m.inJSON, []byte(jsonEscape(f, true)))
	}
	m.text = strings.NewReplacer(pairs...)
	r.masker = m
	return m
}

// maskText is s with every secret value masked: errors, messages, log
// lines.
func (r *runner) maskText(s string) string {
	m := r.getMasker()
	if m == nil {
		return s
	}
	return m.text.Replace(s)
}

// maskJSON is a JSON document with every secret value masked inside its
// strings and keys. It walks the decoded document rather than replacing
// bytes, so a value that happens to read like a number or a literal
// never breaks the document's structure.
func (r *runner) maskJSON(doc []byte) []byte {
	m := r.getMasker()
	if m == nil || len(doc) == 0 || !slices.ContainsFunc(m.inJSON, func(f []byte) bool { return bytes.Contains(doc, f) }) {
		return doc
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber() // numbers come back exactly as they were
	var v any
	if err := dec.Decode(&v); err != nil {
		// Only our own encodings come here; never keep what could not
		// be checked.
		return []byte(`{"unrepresentable":"masking failed"}`)
	}
	out, err := json.Marshal(maskTree(m.text, v))
	if err != nil {
		return []byte(`{"unrepresentable":"masking failed"}`)
	}
	return out
}

func maskTree(rep *strings.Replacer, v any) any {
	switch x := v.(type) {
	case string:
		return rep.Replace(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[rep.Replace(k)] = maskTree(rep, e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = maskTree(rep, e)
		}
		return out
	}
	return v
}

// recordJSON is step data as a record keeps it: encoded, with the
// instance's secret values masked. Every record of an input or output
// goes through here.
func (r *runner) recordJSON(v any) []byte {
	return r.maskJSON(encodeRecord(v))
}

// outputJSON is a step's output as its record keeps it. A connector
// step's token outputs are secrets: learned first, so they are masked
// here and wherever a later step copies them, and masked by key as well,
// so that a token too short to mask by value still never shows.
func (r *runner) outputJSON(step *flow.Step, out map[string]any) []byte {
	for _, k := range step.Secrets() {
		if s, ok := out[k].(string); ok {
			r.learnSecret(s)
		}
	}
	return r.recordJSON(flow.Mask(out, step.Secrets()))
}

// resolveSecrets reads the named secrets a step's expressions use from
// the store, just before it runs: they are in memory for that step only,
// never in vars or in the instance's state (a rotated secret is seen by
// the next step that reads it). An unknown name fails the step, naming
// the secret.
func (r *runner) resolveSecrets(ctx context.Context, step *flow.Step) error {
	names := step.SecretNames()
	if len(names) == 0 {
		r.env.Secrets = nil
		return nil
	}
	vals := make(map[string]string, len(names))
	for _, name := range names {
		v, err := r.e.st.GetNamedSecret(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return r.failStep(step, r.e.now(), nil, fmt.Errorf("secret %q is not set (flowgate secret set %s)", name, name))
		}
		if err != nil {
			// The store failing is no fault of the flow: the run stops
			// and the instance is taken over once its lease runs out.
			return fmt.Errorf("instance %s, step %q: secret %q: %w", r.inst.ID, step.ID, name, err)
		}
		vals[name] = string(v)
		r.learnSecret(string(v))
	}
	r.env.Secrets = vals
	return nil
}
