package scim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	scimerr "github.com/elimity-com/scim/errors"
)

// normalise rewrites what identity providers send that the standard
// does not allow, and refuses what Flowgate would otherwise drop:
//
//   - Entra ID sends booleans as strings ("active": "False"); they become
//     booleans, on active only, where the meaning is not in doubt.
//   - A POST or PUT that sets an attribute Flowgate does not keep
//     ("title", "phoneNumbers", an extension) is refused with
//     invalidValue naming it; empty ones (Entra's "roles": []) pass.
func normalise(r *http.Request, body []byte) ([]byte, *scimerr.ScimError) {
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		e := scimerr.ScimErrorInvalidSyntax
		e.Detail = "the body is not a JSON object: " + err.Error()
		return nil, &e
	}
	path := strings.TrimPrefix(r.URL.Path, "/v2")
	if r.Method == http.MethodPatch {
		for _, op := range listOf(doc["Operations"]) {
			m, ok := op.(map[string]any)
			if !ok {
				continue
			}
			if p, _ := m["path"].(string); strings.EqualFold(p, "active") {
				m["value"] = boolish(m["value"])
			}
			if v, ok := m["value"].(map[string]any); ok {
				for k, x := range v {
					if strings.EqualFold(k, "active") {
						v[k] = boolish(x)
					}
				}
			}
		}
	} else {
		allowed := []string{"schemas", "id", "externalid", "meta"}
		switch {
		case strings.HasSuffix(path, "/.search"):
			return body, nil // a search request, not a resource
		case strings.HasPrefix(path, "/Users"):
			allowed = append(allowed, "username", "name", "displayname", "emails", "active")
		case strings.HasPrefix(path, "/Groups"):
			allowed = append(allowed, "displayname", "members")
		default:
			return body, nil
		}
		for k, v := range doc {
			lk := strings.ToLower(k)
			if lk == "active" {
				doc[k] = boolish(v)
			}
			known := false
			for _, a := range allowed {
				known = known || a == lk
			}
			if !known && !empty(v) {
				e := scimerr.ScimErrorInvalidValue
				e.Detail = fmt.Sprintf("attribute %q is not one Flowgate keeps (it keeps %s); remove it from the identity provider's attribute mappings",
					k, strings.Join(allowed[4:], ", "))
				return nil, &e
			}
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, &scimerr.ScimErrorInternal
	}
	return out, nil
}

func listOf(v any) []any {
	l, _ := v.([]any)
	return l
}

// boolish turns "True" and "False", in any case, into booleans.
func boolish(v any) any {
	if s, ok := v.(string); ok {
		switch strings.ToLower(s) {
		case "true":
			return true
		case "false":
			return false
		}
	}
	return v
}

func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}
