package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
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

// report hands the shared walker's problems to fail, at path or at the
// entry's key below it.
func (d *decoder) report(path string) yamlnode.Report {
	return func(n *yaml.Node, key string, err error) {
		at := path
		if key != "" {
			at = joinPath(path, key)
		}
		d.fail(n, at, err)
	}
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
	for _, p := range yamlnode.Pairs(n, d.report(path)) {
		name := p.Key.Value
		set, ok := fields[name]
		if !ok {
			d.unknownKey(p.Key, path, fields)
			continue
		}
		present[name] = p.Value
		set(p.Value, joinPath(path, name))
	}
	return present, true
}

// unknownKey reports a key the mapping at path does not take, with the
// hint for a key people are known to try.
func (d *decoder) unknownKey(k *yaml.Node, path string, fields map[string]setter) {
	kp := joinPath(path, k.Value)
	if hint, ok := keyHints[kp]; ok {
		d.failf(k, kp, "unknown key (%s)", hint)
		return
	}
	what := path
	if what == "" {
		what = "the configuration file"
	}
	d.fail(k, kp, yamlnode.UnknownKey(k.Value, what, slices.Sorted(maps.Keys(fields))))
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

// enum decodes one of a fixed set of strings; "" keeps the default, since
// people write "" for "not set".
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
		for _, p := range yamlnode.Pairs(n, d.report(path)) {
			kp := joinPath(path, p.Key.Value)
			v := p.Value
			s, ok := d.scalar(v, kp)
			if !ok {
				if yamlnode.IsNull(v) {
					d.failf(v, kp, "must not be empty")
				}
				continue
			}
			if check != nil {
				if err := check(p.Key.Value, s); err != nil {
					d.fail(v, kp, err)
					continue
				}
			}
			out[p.Key.Value] = s
		}
		if len(out) > 0 {
			*dst = out
		}
	}
}
