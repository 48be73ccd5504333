package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/flowgate/flowgate/internal/duration"
	"github.com/flowgate/flowgate/internal/yamlnode"
)

// FieldError is one configuration problem. Load and Parse return all of
// them joined with errors.Join, one per line.
type FieldError struct {
	// File is the configuration file; "" when the value came from the
	// environment or a flag.
	File string
	// Line and Column locate the key or value in File, 1-based; 0 when
	// unknown.
	Line, Column int
	// Path is the key path (clients[0].id), or the environment variable or
	// flag (FLOWGATE_ADDR, --addr) the value came from.
	Path string
	Err  error
}

// Error formats the problem as file:line:column: path: message, the form
// editors and terminals turn into links.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
			if e.Column > 0 {
				fmt.Fprintf(&b, ":%d", e.Column)
			}
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying problem.
func (e *FieldError) Unwrap() error { return e.Err }

// syntaxError is a YAML syntax error with the "yaml: line N:" prefix moved
// into the FieldError position.
type syntaxError struct {
	msg string
	err error
}

func (e *syntaxError) Error() string { return "invalid YAML: " + e.msg }
func (e *syntaxError) Unwrap() error { return e.err }

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// decoder walks a yaml.Node tree by hand rather than unmarshalling into
// structs, because only the node tree keeps a line and column for every
// key and value, which every error message needs.
type decoder struct {
	file string
	errs []*FieldError
}

func (d *decoder) fail(n *yaml.Node, path string, err error) {
	fe := &FieldError{File: d.file, Path: path, Err: err}
	if n != nil {
		fe.Line, fe.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, fe)
}

func (d *decoder) failf(n *yaml.Node, path, format string, args ...any) {
	d.fail(n, path, fmt.Errorf(format, args...))
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

type pair struct{ key, val *yaml.Node }

// pairs lists a mapping's entries, with YAML merge keys (<<: *anchor)
// expanded below the explicit keys, and reports duplicate keys, which the
// node tree would otherwise let pass silently.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var out, merged []pair
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := yamlnode.Resolve(n.Content[i]), n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merged = append(merged, d.mergePairs(v, path)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.failf(k, path, "a key must be a name, not %s", yamlnode.Describe(k))
			continue
		}
		if seen[k.Value] {
			d.failf(k, joinPath(path, k.Value), "duplicate key")
			continue
		}
		seen[k.Value] = true
		out = append(out, pair{k, v})
	}
	for _, p := range merged {
		if !seen[p.key.Value] {
			seen[p.key.Value] = true
			out = append(out, p)
		}
	}
	return out
}

func (d *decoder) mergePairs(v *yaml.Node, path string) []pair {
	v = yamlnode.Resolve(v)
	switch v.Kind {
	case yaml.MappingNode:
		return d.pairs(v, path)
	case yaml.SequenceNode:
		var out []pair
		for _, m := range v.Content {
			if m = yamlnode.Resolve(m); m.Kind != yaml.MappingNode {
				d.failf(m, path, "<< merges mappings, not %s", yamlnode.Describe(m))
				continue
			}
			out = append(out, d.pairs(m, path)...)
		}
		return out
	}
	d.failf(v, path, "<< merges mappings, not %s", yamlnode.Describe(v))
	return nil
}

// setter decodes one value found at path into its destination.
type setter func(v *yaml.Node, path string)

// keyHints explain the unknown keys people are most likely to try.
var keyHints = map[string]string{
	"secrets.key": "the secret key is read only from FLOWGATE_SECRET_KEY, never from the file; use secrets.key_file for a key file",
}

// object decodes a mapping with a fixed set of keys and returns the value
// node of every key present, for later cross-field checks. A null node is
// an empty mapping, so "auth:" with nothing below keeps the defaults.
func (d *decoder) object(n *yaml.Node, path string, fields map[string]setter) (map[string]*yaml.Node, bool) {
	n = yamlnode.Resolve(n)
	present := map[string]*yaml.Node{}
	if yamlnode.IsNull(n) {
		return present, true
	}
	if n.Kind != yaml.MappingNode {
		d.failf(n, path, "must be a mapping, not %s", yamlnode.Describe(n))
		return present, false
	}
	for _, p := range d.pairs(n, path) {
		name := p.key.Value
		set, ok := fields[name]
		if !ok {
			d.unknownKey(p.key, joinPath(path, name), fields)
			continue
		}
		v := yamlnode.Resolve(p.val)
		present[name] = v
		set(v, joinPath(path, name))
	}
	return present, true
}

func (d *decoder) unknownKey(k *yaml.Node, path string, fields map[string]setter) {
	if hint, ok := keyHints[path]; ok {
		d.failf(k, path, "unknown key (%s)", hint)
		return
	}
	if best := yamlnode.Nearest(k.Value, slices.Sorted(maps.Keys(fields))); best != "" {
		d.failf(k, path, "unknown key (did you mean %s?)", best)
		return
	}
	d.failf(k, path, "unknown key")
}

// list decodes a sequence, calling item for each element with its path.
func (d *decoder) list(n *yaml.Node, path string, item func(v *yaml.Node, path string)) {
	n = yamlnode.Resolve(n)
	if yamlnode.IsNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.failf(n, path, "must be a list, not %s", yamlnode.Describe(n))
		return
	}
	for i, v := range n.Content {
		item(yamlnode.Resolve(v), indexPath(path, i))
	}
}

// scalar returns a scalar's text as written (so 0123 keeps its zero);
// set is false for null, which leaves the default in place.
func (d *decoder) scalar(v *yaml.Node, path string) (s string, set bool) {
	if yamlnode.IsNull(v) {
		return "", false
	}
	if v.Kind != yaml.ScalarNode {
		d.failf(v, path, "must be a string, not %s", yamlnode.Describe(v))
		return "", false
	}
	return v.Value, true
}

// str decodes a string, then runs the optional checks on a non-empty value.
func (d *decoder) str(dst *string, checks ...func(string) error) setter {
	return func(v *yaml.Node, path string) {
		s, ok := d.scalar(v, path)
		if !ok {
			return
		}
		*dst = s
		if s == "" {
			return
		}
		for _, check := range checks {
			if err := check(s); err != nil {
				d.fail(v, path, err)
				return
			}
		}
	}
}

// enum decodes one of a fixed set of strings; "" keeps the default, as the
// SPEC example writes "" for "not set".
func (d *decoder) enum(dst *string, allowed []string) setter {
	return func(v *yaml.Node, path string) {
		s, ok := d.scalar(v, path)
		if !ok || s == "" {
			return
		}
		if !slices.Contains(allowed, s) {
			d.failf(v, path, "%q is not one of %s", s, strings.Join(allowed, ", "))
			return
		}
		*dst = s
	}
}

func (d *decoder) boolean(dst *bool) setter {
	return func(v *yaml.Node, path string) {
		if yamlnode.IsNull(v) {
			return
		}
		if v.Kind != yaml.ScalarNode {
			d.failf(v, path, "must be true or false, not %s", yamlnode.Describe(v))
			return
		}
		if v.Tag != "!!bool" {
			d.failf(v, path, "%q is not true or false", v.Value)
			return
		}
		*dst = strings.EqualFold(v.Value, "true")
	}
}

func (d *decoder) duration(dst *time.Duration) setter {
	return func(v *yaml.Node, path string) {
		s, ok := d.scalar(v, path)
		if !ok || s == "" {
			return
		}
		dur, err := duration.Positive(s)
		if err != nil {
			d.fail(v, path, err)
			return
		}
		*dst = dur
	}
}

// positiveInt decodes a whole number above zero.
func (d *decoder) positiveInt(dst *int) setter {
	return func(v *yaml.Node, path string) {
		s, ok := d.scalar(v, path)
		if !ok || s == "" {
			return
		}
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			d.failf(v, path, "%q is not a whole number above zero", s)
			return
		}
		*dst = n
	}
}

// size decodes a size in bytes: a whole number of bytes, or one followed
// by B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024).
func (d *decoder) size(dst *int64) setter {
	return func(v *yaml.Node, path string) {
		s, ok := d.scalar(v, path)
		if !ok || s == "" {
			return
		}
		n, err := parseSize(s)
		if err != nil {
			d.failf(v, path, "%q is not a size (such as 1MiB, 512KiB, 2MB or a number of bytes)", s)
			return
		}
		if n <= 0 {
			d.failf(v, path, "%q must be larger than zero", s)
			return
		}
		*dst = n
	}
}

// sizeUnits are the suffixes parseSize knows, longest first so that KiB
// is not read as K plus iB.
var sizeUnits = []struct {
	suffix string
	factor int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
}

func parseSize(s string) (int64, error) {
	num, factor := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, factor = strings.TrimSpace(rest), u.factor
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/factor {
		return 0, errors.New("bad size")
	}
	return n * factor, nil
}

// strs decodes a list of non-empty strings, each passing check.
func (d *decoder) strs(dst *[]string, check func(string) error) setter {
	return func(n *yaml.Node, path string) {
		var out []string
		d.list(n, path, func(v *yaml.Node, p string) {
			s, ok := d.scalar(v, p)
			if !ok && yamlnode.IsNull(v) || ok && s == "" {
				d.failf(v, p, "must not be empty")
				return
			}
			if !ok {
				return
			}
			if check != nil {
				if err := check(s); err != nil {
					d.fail(v, p, err)
					return
				}
			}
			out = append(out, s)
		})
		if out != nil {
			*dst = out
		}
	}
}

// strMap decodes a mapping of strings to strings; check sees each entry.
func (d *decoder) strMap(dst *map[string]string, check func(k, v string) error) setter {
	return func(n *yaml.Node, path string) {
		n = yamlnode.Resolve(n)
		if yamlnode.IsNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.failf(n, path, "must be a mapping, not %s", yamlnode.Describe(n))
			return
		}
		out := map[string]string{}
		for _, p := range d.pairs(n, path) {
			kp := joinPath(path, p.key.Value)
			v := yamlnode.Resolve(p.val)
			s, ok := d.scalar(v, kp)
			if !ok {
				if yamlnode.IsNull(v) {
					d.failf(v, kp, "must not be empty")
				}
				continue
			}
			if check != nil {
				if err := check(p.key.Value, s); err != nil {
					d.fail(v, kp, err)
					continue
				}
			}
			out[p.key.Value] = s
		}
		if len(out) > 0 {
			*dst = out
		}
	}
}
