package odata

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/flowgate/flowgate/internal/store"
)

// options are a collection request's query options, checked against its
// entity set.
type options struct {
	filter    store.DataExpr
	sel       []string
	order     []store.DataOrder
	top       int // -1: none
	skip      int
	count     bool
	skiptoken skipToken
	// maxPage is the client's odata.maxpagesize preference (0: none).
	maxPage int
}

// parseOptions reads the system query options. Options the service does
// not implement are 501; unknown $-options and malformed values are 400.
// Other parameters are custom query options, which OData lets a service
// ignore.
func parseOptions(raw string, set *entitySet) (options, error) {
	o := options{top: -1}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return o, badRequest("", "the query string is not valid URL encoding: %v", err)
	}
	for name, vs := range vals {
		if strings.HasPrefix(name, "@") {
			return o, notImplemented(name, "parameter aliases (%s) are not supported by this service", name)
		}
		if !strings.HasPrefix(name, "$") {
			continue
		}
		if len(vs) > 1 {
			return o, badRequest(name, "%s is given %d times; give it once", name, len(vs))
		}
		v := vs[0]
		switch name {
		case "$filter":
			if o.filter, err = ParseFilter(v, set.props()); err != nil {
				return o, err
			}
		case "$select":
			if o.sel, err = parseSelect(v, set); err != nil {
				return o, err
			}
		case "$orderby":
			if o.order, err = parseOrderBy(v, set); err != nil {
				return o, err
			}
		case "$skiptoken":
			if o.skiptoken, err = parseSkipToken(v, set); err != nil {
				return o, err
			}
		case "$top", "$skip":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return o, badRequest(name, "%s must be a whole number of 0 or more, not %q", name, v)
			}
			if name == "$top" {
				o.top = n
			} else {
				o.skip = n
			}
		case "$count":
			switch v {
			case "true":
				o.count = true
			case "false":
			default:
				return o, badRequest(name, "$count must be true or false, not %q", v)
			}
		case "$format":
			if f, _, _ := strings.Cut(v, ";"); f != "json" && f != "application/json" {
				return o, notImplemented(name, "$format=%s is not supported by this service; it answers JSON only", v)
			}
		case "$expand", "$search", "$apply", "$compute", "$levels", "$index", "$deltatoken", "$schemaversion", "$id":
			return o, notImplemented(name, "%s is not supported by this service", name)
		default:
			return o, badRequest(name, "%s is not an OData system query option", name)
		}
	}
	return o, nil
}

func parseSelect(v string, set *entitySet) ([]string, error) {
	if strings.TrimSpace(v) == "*" {
		return nil, nil
	}
	var out []string
	seen := map[string]bool{}
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, badRequest("$select", "$select has an empty item: %q", v)
		}
		if strings.ContainsAny(item, "/(*") {
			return nil, notImplemented("$select", "$select %q: paths, functions and * among names are not supported by this service", item)
		}
		if _, ok := set.field(item); !ok {
			return nil, &Error{Status: 400, Code: "BadRequest", Target: item,
				Message: "$select: " + strconv.Quote(item) + " is not a property of " + set.name}
		}
		if !seen[item] {
			seen[item] = true
			out = append(out, item)
		}
	}
	return out, nil
}

func parseOrderBy(v string, set *entitySet) ([]store.DataOrder, error) {
	var out []store.DataOrder
	for _, item := range strings.Split(v, ",") {
		parts := strings.Fields(item)
		if len(parts) == 0 || len(parts) > 2 {
			return nil, badRequest("$orderby", "$orderby item %q: write a property, then asc or desc", strings.TrimSpace(item))
		}
		if strings.ContainsAny(parts[0], "/(") {
			return nil, notImplemented("$orderby", "$orderby %q: paths and functions are not supported by this service", parts[0])
		}
		if _, ok := set.field(parts[0]); !ok {
			return nil, &Error{Status: 400, Code: "BadRequest", Target: parts[0],
				Message: "$orderby: " + strconv.Quote(parts[0]) + " is not a property of " + set.name}
		}
		o := store.DataOrder{Field: parts[0]}
		if len(parts) == 2 {
			switch parts[1] {
			case "asc":
			case "desc":
				o.Desc = true
			default:
				return nil, badRequest("$orderby", "$orderby %q: the direction is asc or desc, not %q", parts[0], parts[1])
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// applyPrefer reads Prefer: odata.maxpagesize=N, which lets a client ask
// for pages smaller than PageSize.
func applyPrefer(r *http.Request, o *options) error {
	for _, h := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(h, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok || !strings.EqualFold(k, "odata.maxpagesize") {
				continue
			}
			n, err := strconv.Atoi(strings.Trim(v, `"`))
			if err != nil || n <= 0 {
				return badRequest("Prefer", "odata.maxpagesize must be a positive whole number, not %q", v)
			}
			o.maxPage = n
		}
	}
	return nil
}

// skipToken is where the next page of an answer starts: N rows were
// returned before it and, for a set listed in key order (no $orderby),
// After is the key of the last of them. It travels in @odata.nextLink as
// base64url JSON; clients treat it as opaque.
type skipToken struct {
	N     int   `json:"n"`
	After []any `json:"k,omitempty"`
}

func (t skipToken) encode() string {
	b, _ := json.Marshal(t) // numbers and strings only
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseSkipToken(v string, set *entitySet) (skipToken, error) {
	var t skipToken
	bad := badRequest("$skiptoken", "$skiptoken %.40q is not one this service handed out: follow @odata.nextLink as it is", v)
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return t, bad
	}
	var raw struct {
		N     int               `json:"n"`
		After []json.RawMessage `json:"k"`
	}
	if err := json.Unmarshal(b, &raw); err != nil || raw.N < 0 {
		return t, bad
	}
	t.N = raw.N
	if len(raw.After) == 0 {
		return t, nil
	}
	key := store.DataKey(set.set)
	if len(raw.After) != len(key) {
		return t, bad
	}
	for i, k := range key {
		f, _ := set.field(k)
		switch f.Type {
		case store.DataInt:
			var n int64
			if json.Unmarshal(raw.After[i], &n) != nil {
				return t, bad
			}
			t.After = append(t.After, n)
		default:
			var s string
			if json.Unmarshal(raw.After[i], &s) != nil {
				return t, bad
			}
			t.After = append(t.After, s)
		}
	}
	return t, nil
}
