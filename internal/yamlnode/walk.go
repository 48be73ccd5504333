package yamlnode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// SyntaxError is YAML that could not be read at all.
type SyntaxError struct {
	// Line is where yaml.v3 stopped, 1-based; 0 when it did not say.
	Line int
	// Msg is yaml.v3's message without its "yaml: line N:" prefix, which
	// Line carries.
	Msg string
	// Err is the decoder's error.
	Err error
}

// Error says the YAML is invalid and why.
func (e *SyntaxError) Error() string { return "invalid YAML: " + e.Msg }

// Unwrap returns the decoder's error.
func (e *SyntaxError) Unwrap() error { return e.Err }

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func syntaxError(err error) *SyntaxError {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &SyntaxError{Line: line, Msg: m[2], Err: err}
	}
	return &SyntaxError{Msg: strings.TrimPrefix(err.Error(), "yaml: "), Err: err}
}

// Document reads data as one YAML document and returns its root node with
// aliases followed, or nil when data holds no document. extra is the start
// of a second document, or nil: a plain decoder would ignore it and every
// mistake in it, so callers refuse it in their own words. err is a
// *SyntaxError.
func Document(data []byte) (root, extra *yaml.Node, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc, next yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, nil
		}
		return nil, nil, syntaxError(err)
	}
	switch err := dec.Decode(&next); {
	case err == nil:
		extra = &next
	case !errors.Is(err, io.EOF):
		return nil, nil, syntaxError(err)
	}
	root = Resolve(&doc)
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, extra, nil
		}
		root = Resolve(root.Content[0])
	}
	return root, extra, nil
}

// Pair is one entry of a mapping, with key and value aliases followed.
type Pair struct{ Key, Value *yaml.Node }

// Report receives a problem found while walking a mapping: n is where it
// is, key the entry it concerns ("" when it concerns the mapping as a
// whole, such as a key that is not a name or a bad merge), err what is
// wrong.
type Report func(n *yaml.Node, key string, err error)

// Pairs returns the entries of the mapping n in order. Merge keys
// (<<: *anchor, or a list of anchors) are expanded below the explicit
// keys: an explicit key wins over a merged one, and an earlier merged
// mapping over a later one. Keys that are not names (mappings, lists,
// null) and duplicate keys are reported and left out: the node tree keeps
// both duplicates, where a decoder into a map would silently keep the
// last.
func Pairs(n *yaml.Node, report Report) []Pair {
	n = Resolve(n)
	var out, merged []Pair
	first := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := Resolve(n.Content[i]), n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merged = append(merged, mergePairs(v, report)...)
			continue
		}
		if k.Kind != yaml.ScalarNode || k.Tag == "!!null" {
			report(k, "", fmt.Errorf("a key must be a name, not %s", Describe(k)))
			continue
		}
		if prev, dup := first[k.Value]; dup {
			report(k, k.Value, fmt.Errorf("duplicate key (first at line %d)", prev.Line))
			continue
		}
		first[k.Value] = k
		out = append(out, Pair{k, Resolve(v)})
	}
	for _, p := range merged {
		if _, ok := first[p.Key.Value]; !ok {
			first[p.Key.Value] = p.Key
			out = append(out, p)
		}
	}
	return out
}

func mergePairs(v *yaml.Node, report Report) []Pair {
	v = Resolve(v)
	nodes := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		nodes = v.Content
	}
	var out []Pair
	for _, m := range nodes {
		if m = Resolve(m); m.Kind != yaml.MappingNode {
			report(m, "", fmt.Errorf("<< merges mappings, not %s", Describe(m)))
			continue
		}
		out = append(out, Pairs(m, report)...)
	}
	return out
}

// UnknownKey is the error for a key k that the mapping (what, such as "a
// fail step") does not take: a "did you mean" when one allowed key is
// close, else the whole list, which beats a guess.
func UnknownKey(k, what string, allowed []string) error {
	if best := Nearest(k, allowed); best != "" {
		return fmt.Errorf("unknown key (did you mean %s?)", best)
	}
	return fmt.Errorf("unknown key (%s takes %s)", what, strings.Join(allowed, ", "))
}
