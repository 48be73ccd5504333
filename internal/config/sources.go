package config

import (
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/flowgate/flowgate/internal/yamlnode"
)

// secretKeys are the keys that hold a secret, wherever they appear in the
// file. Each also takes a KEY_file variant naming a file that holds the
// value, so that no secret needs to be written in the configuration (a
// Kubernetes Secret or a Docker secret mounted as a file). A new secret
// key anywhere in the file only needs its name here.
// database is among them because its URL carries the database password.
var secretKeys = [...]string{"database", "password", "password_hash", "secret", "client_secret"}

// fileSuffix marks the file variant of a secret key.
const fileSuffix = "_file"

func isSecretKey(name string) bool {
	for _, k := range secretKeys {
		if k == name {
			return true
		}
	}
	return false
}

// expandSources prepares the node tree before it is decoded: every scalar
// value has its ${NAME} references replaced by the environment variable
// NAME, and every secret key written as KEY_file is replaced by KEY with
// the file's content. Doing this on the nodes, before any key is decoded,
// keeps it out of every section's decoder and keeps the line and column
// of the value for every later error. getenv returns "" for a variable
// that is not set.
func (d *decoder) expandSources(root *yaml.Node, getenv func(string) string) {
	seen := map[*yaml.Node]bool{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		n = yamlnode.Resolve(n)
		// An anchor's node is reached once per alias; expanding it twice
		// would read a written "$${" as a reference the second time.
		if n == nil || seen[n] {
			return
		}
		seen[n] = true
		switch n.Kind {
		case yaml.ScalarNode:
			d.expandScalar(n, path, getenv)
		case yaml.SequenceNode:
			for i, v := range n.Content {
				walk(v, indexPath(path, i))
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := yamlnode.Resolve(n.Content[i])
				key := k.Value
				if k.Tag == "!!merge" {
					walk(n.Content[i+1], path)
					continue
				}
				walk(n.Content[i+1], joinPath(path, key))
			}
			d.readSecretFiles(n, path)
		}
	}
	walk(root, "")
}

// expandScalar replaces the ${NAME} references in one value. A plain
// (unquoted) value is typed again after the replacement, so that
// "refresh_tokens: ${REFRESH}" is a boolean when the variable says true;
// a quoted one stays a string.
func (d *decoder) expandScalar(n *yaml.Node, path string, getenv func(string) string) {
	if !strings.Contains(n.Value, "$") || n.Tag == "!!null" {
		return
	}
	s, err := expandEnv(n.Value, getenv)
	if err != nil {
		d.fail(n, path, err)
		return
	}
	if s == n.Value {
		return
	}
	n.Value = s
	if n.Style == 0 {
		n.Tag = ""
		n.Tag = n.ShortTag()
	}
}

// expandEnv replaces ${NAME} in s by the variable's value. "$${" writes a
// literal "${"; a lone "$" stays as it is. A reference that is not
// ${NAME} (NAME made of letters, digits and underscores, not starting
// with a digit) or names a variable that is unset or empty is an error,
// since a silently empty secret is worse than a refused start.
func expandEnv(s string, getenv func(string) string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "$")
		if i < 0 || i+1 >= len(s) {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		rest := s[i:]
		switch {
		case strings.HasPrefix(rest, "$${"):
			b.WriteString("${")
			s = rest[3:]
		case strings.HasPrefix(rest, "${"):
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return "", fmt.Errorf("%q has ${ without a closing }; write $${ for a literal ${", truncateRef(rest))
			}
			name := rest[2:end]
			if !isEnvName(name) {
				return "", fmt.Errorf("${%s} is not a reference to an environment variable (letters, digits and _); write $${ for a literal ${", name)
			}
			v := getenv(name)
			if v == "" {
				return "", fmt.Errorf("environment variable %s is not set (or is empty)", name)
			}
			b.WriteString(v)
			s = rest[end+1:]
		default:
			b.WriteByte('$')
			s = rest[1:]
		}
	}
}

// truncateRef shortens what an error quotes of a broken reference, which
// may run into a secret written after it.
func truncateRef(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// readSecretFiles turns each KEY_file entry of the mapping n, KEY a secret
// key, into KEY with the content of the named file (one trailing line
// break removed, as editors and `kubectl create secret --from-file` leave
// one). The value node keeps its place, so later errors about the secret
// point at the _file line.
func (d *decoder) readSecretFiles(n *yaml.Node, path string) {
	keys := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		keys[yamlnode.Resolve(n.Content[i]).Value] = true
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := yamlnode.Resolve(n.Content[i]), yamlnode.Resolve(n.Content[i+1])
		base, ok := strings.CutSuffix(k.Value, fileSuffix)
		if !ok || !isSecretKey(base) {
			continue
		}
		p := joinPath(path, k.Value)
		if keys[base] {
			d.failf(k, p, "give %s or %s, not both", base, k.Value)
			continue
		}
		if v.Kind != yaml.ScalarNode || yamlnode.IsNull(v) || v.Value == "" {
			d.failf(v, p, "must be the path of a file holding the %s", base)
			continue
		}
		data, err := os.ReadFile(v.Value)
		if err != nil {
			d.failf(v, p, "%w", err)
			continue
		}
		secret := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
		// A fresh value node: an anchored file path may be used by
		// another key, which must keep the path.
		n.Content[i] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: base, Line: k.Line, Column: k.Column}
		n.Content[i+1] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Style: yaml.DoubleQuotedStyle, Value: secret, Line: v.Line, Column: v.Column}
	}
}
