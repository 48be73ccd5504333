package odata

import (
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
	skiptoken int
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
		case "$top", "$skip", "$skiptoken":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return o, badRequest(name, "%s must be a whole number of 0 or more, not %q", name, v)
			}
			switch name {
			case "$top":
				o.top = n
			case "$skip":
				o.skip = n
			default:
				o.skiptoken = n
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
