package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/flowgate/flowgate/internal/api"
)

// apiDoc is the parsed OpenAPI document with a mux that finds the path
// template of a request the way the server's mux does.
type apiDoc struct {
	root map[string]any
	mux  *http.ServeMux
}

// loadDoc parses the served document once per test binary.
var loadDoc = sync.OnceValues(func() (*apiDoc, error) {
	var root map[string]any
	if err := json.Unmarshal(api.OpenAPIDocument, &root); err != nil {
		return nil, err
	}
	d := &apiDoc{root: root, mux: http.NewServeMux()}
	paths, _ := root["paths"].(map[string]any)
	for p, item := range paths {
		for m := range item.(map[string]any) {
			if m == "parameters" {
				continue
			}
			d.mux.Handle(strings.ToUpper(m)+" "+p, http.NotFoundHandler())
		}
	}
	return d, nil
})

func openAPI(t *testing.T) *apiDoc {
	t.Helper()
	d, err := loadDoc()
	if err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	return d
}

// get walks keys from the root.
func (d *apiDoc) get(keys ...string) any {
	var v any = d.root
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// deref follows a local $ref ("#/components/…"); nil when it leads
// nowhere.
func (d *apiDoc) deref(node map[string]any) map[string]any {
	for range 10 {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node
		}
		rest, ok := strings.CutPrefix(ref, "#/")
		if !ok {
			return nil
		}
		next, _ := d.get(strings.Split(rest, "/")...).(map[string]any)
		if next == nil {
			return nil
		}
		node = next
	}
	return nil
}

// operation finds the documented operation of a request: its path
// template and the operation object (nil when the path is documented for
// other methods only, or not at all).
func (d *apiDoc) operation(req *http.Request) (string, map[string]any) {
	_, pattern := d.mux.Handler(req)
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		return "", nil
	}
	op, _ := d.get("paths", path, strings.ToLower(method)).(map[string]any)
	if op == nil && req.Method == http.MethodHead {
		op, _ = d.get("paths", path, "get").(map[string]any)
	}
	return path, op
}

// checkAnswer validates an answer of the API against the document: the
// status is documented (or a default is), a documented body is JSON and
// matches its schema, and an undocumented one is empty. Answers the
// server gave from no route (the JSON 404/405) must be the Error shape.
// Without an engine, the switched routes are stand-ins and are skipped.
func checkAnswer(req *http.Request, r resp, realRoutes bool) []string {
	d, err := loadDoc()
	if err != nil {
		return []string{"the OpenAPI document does not parse: " + err.Error()}
	}
	_, op := d.operation(req)
	if op != nil && !realRoutes && op["x-flowgate-switch"] != nil {
		return nil
	}
	var schema map[string]any
	if op == nil {
		schema, _ = d.get("components", "schemas", "Error").(map[string]any)
	} else {
		responses, _ := op["responses"].(map[string]any)
		res, ok := responses[strconv.Itoa(r.status)].(map[string]any)
		if !ok {
			res, ok = responses["default"].(map[string]any)
		}
		if !ok {
			return []string{fmt.Sprintf("status %d is not documented", r.status)}
		}
		if res = d.deref(res); res == nil {
			return []string{"a response $ref leads nowhere"}
		}
		content, _ := res["content"].(map[string]any)
		if content == nil {
			if len(r.body) > 0 {
				return []string{"the document says no body, the server sent one"}
			}
			return nil
		}
		media, _ := content["application/json"].(map[string]any)
		schema, _ = media["schema"].(map[string]any)
	}
	if len(r.body) == 0 {
		return []string{"the document describes a body, the server sent none"}
	}
	if mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type")); mt != "application/json" {
		return []string{fmt.Sprintf("Content-Type %q, want application/json", r.header.Get("Content-Type"))}
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(r.body))
	if err := dec.Decode(&v); err != nil {
		return []string{"the body is not JSON: " + err.Error()}
	}
	var problems []string
	d.validate(schema, v, "$", &problems)
	return problems
}

// validate checks v against a JSON Schema subset: $ref, type (a name or
// a list of names, so ["string", "null"] is nullable), enum, required,
// properties, additionalProperties and items. One rule goes beyond JSON
// Schema, to keep the document complete: an object whose schema lists
// properties and says nothing of additionalProperties may not carry
// others.
func (d *apiDoc) validate(schema map[string]any, v any, at string, problems *[]string) {
	fail := func(format string, args ...any) {
		*problems = append(*problems, at+": "+fmt.Sprintf(format, args...))
	}
	if schema == nil {
		fail("no schema")
		return
	}
	if schema = d.deref(schema); schema == nil {
		fail("schema $ref leads nowhere")
		return
	}
	if t, ok := schema["type"]; ok {
		var types []string
		switch x := t.(type) {
		case string:
			types = []string{x}
		case []any:
			for _, e := range x {
				s, _ := e.(string)
				types = append(types, s)
			}
		}
		if !slices.ContainsFunc(types, func(name string) bool { return isType(name, v) }) {
			fail("%s is not of type %v", jsonTypeOf(v), types)
			return
		}
	}
	if enum, ok := schema["enum"].([]any); ok {
		if !slices.ContainsFunc(enum, func(e any) bool { return reflect.DeepEqual(e, v) }) {
			fail("%v is not one of %v", v, enum)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		req, _ := schema["required"].([]any)
		for _, name := range req {
			if _, ok := x[name.(string)]; !ok {
				fail("required property %q is missing", name)
			}
		}
		props, _ := schema["properties"].(map[string]any)
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if ps, ok := props[k].(map[string]any); ok {
				d.validate(ps, x[k], at+"."+k, problems)
				continue
			}
			switch ap := schema["additionalProperties"].(type) {
			case map[string]any:
				d.validate(ap, x[k], at+"."+k, problems)
			case bool:
				if !ap {
					fail("property %q is not allowed", k)
				}
			default:
				if props != nil {
					fail("property %q is not documented", k)
				}
			}
		}
	case []any:
		if items, ok := schema["items"].(map[string]any); ok {
			for i, e := range x {
				d.validate(items, e, fmt.Sprintf("%s[%d]", at, i), problems)
			}
		}
	}
}

func isType(name string, v any) bool {
	switch name {
	case "null":
		return v == nil
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	}
	return false
}

func jsonTypeOf(v any) string {
	for _, n := range []string{"null", "boolean", "string", "integer", "number", "object", "array"} {
		if isType(n, v) {
			return n
		}
	}
	return fmt.Sprintf("%T", v)
}

// TestSchemaChecker shows the checker refuses what it must, so that a
// response passing it means something.
func TestSchemaChecker(t *testing.T) {
	d := openAPI(t)
	inst, _ := d.get("components", "schemas", "Instance").(map[string]any)
	good := map[string]any{
		"id": "i", "workflow": "w", "version": 1.0, "status": "completed", "started_by": "user:a",
		"started_at": "2025-01-01T00:00:00Z", "ended_at": nil, "current_step": nil, "input": map[string]any{},
		"vars": map[string]any{}, "output": nil, "error": nil,
	}
	var ps []string
	d.validate(inst, good, "$", &ps)
	if len(ps) != 0 {
		t.Fatalf("a valid instance is refused: %v", ps)
	}
	for name, change := range map[string]func(m map[string]any){
		"missing required": func(m map[string]any) { delete(m, "status") },
		"wrong type":       func(m map[string]any) { m["version"] = "1" },
		"not an integer":   func(m map[string]any) { m["version"] = 1.5 },
		"null not allowed": func(m map[string]any) { m["started_at"] = nil },
		"enum":             func(m map[string]any) { m["status"] = "done" },
		"undocumented":     func(m map[string]any) { m["colour"] = "blue" },
	} {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		change(m)
		var ps []string
		d.validate(inst, m, "$", &ps)
		if len(ps) == 0 {
			t.Errorf("%s: the checker accepts %v", name, m)
		}
	}
	list, _ := d.get("components", "schemas", "TaskList").(map[string]any)
	var lp []string
	d.validate(list, map[string]any{"items": []any{map[string]any{"serial": 1.0}}, "next_cursor": nil}, "$", &lp)
	if len(lp) == 0 {
		t.Error("the checker does not look into list items")
	}
}
