// Package yamlnode is the one strict YAML walker behind Flowgate's
// configuration file and flow definitions. Both walk yaml.v3 nodes rather
// than unmarshal into structs, so every error can name its line and key;
// reading documents, mappings (merge keys, aliases, duplicate and null
// keys) and unknown keys here keeps the two readers behaving alike.
package yamlnode

import "gopkg.in/yaml.v3"

// Resolve follows aliases, so anchors can be reused anywhere.
func Resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// IsNull reports whether n is absent or an explicit null.
func IsNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// Describe names a node's type without its value, since the value may be a
// secret.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		}
		return "a string"
	}
	return "a document"
}

// Nearest returns the candidate a typo of s most likely meant, for "did you
// mean" hints, or "": at most two edits away, and fewer edits than the
// candidate has characters (else "b" would suggest "a"). Candidates are
// tried in order, so ties go to the first.
func Nearest(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestDist && d < len(c) {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
