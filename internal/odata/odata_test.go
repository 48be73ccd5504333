package odata_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestDataAPI drives the Data API with an independent OData client on
// both backends: $metadata, the service document, every filter operator,
// paging through @odata.nextLink, $count, the flow's typed columns, who
// sees which rows, and the errors of malformed and unsupported queries.
func TestDataAPI(t *testing.T) {
	for name, database := range backends(t) {
		t.Run(name, func(t *testing.T) {
			e := start(t, database(t, t.TempDir()))
			testDataAPI(t, e)
		})
	}
}

func testDataAPI(t *testing.T, e *env) {
	reporter := e.token(t, "reporter", "data.read workflows.start")
	other := e.token(t, "other", "data.read workflows.start")
	boss := e.token(t, "boss", "data.read admin")
	adminRole := e.token(t, "adminrole", "data.read")
	noScope := e.token(t, "noscope", "workflows.read")

	// The reporter starts five expense reports, the other client three.
	before := time.Now().UTC().Add(-time.Second).Truncate(time.Second)
	var mine, theirs []string
	for i := 1; i <= 8; i++ {
		tok, list := reporter, &mine
		if i > 5 {
			tok, list = other, &theirs
		}
		input := map[string]any{"amount": float64(i) * 10.5, "items": i, "note": fmt.Sprintf("item-%d", i), "urgent": i%2 == 0}
		if i == 3 {
			delete(input, "note") // an optional field left out is null
		}
		status, body := e.call(t, "POST", "/api/v1/workflows/expense-report/instances", tok, input)
		if status != 201 {
			t.Fatalf("start %d: %d %v", i, status, body)
		}
		*list = append(*list, body["id"].(string))
	}

	base := e.base + "/odata/v4"
	q := func(name, token, path string, query map[string]any) req {
		return req{Name: name, Base: base, Token: token, Path: path, Query: query}
	}
	f := func(name string, filter map[string]any) req {
		return q(name, reporter, "expense_report", map[string]any{"filter": filter, "select": []string{"items"}, "orderBy": "items"})
	}
	date := func(t time.Time) map[string]any { return map[string]any{"$date": t.Format(time.RFC3339)} }
	reqs := []req{
		q("service", reporter, "", nil),
		q("service-admin", boss, "", nil),
		q("metadata", reporter, "$metadata", nil),
		q("metadata-admin", boss, "$metadata", nil),
		q("instances", reporter, "Instances", map[string]any{"count": true}),
		q("instances-other", other, "Instances", nil),
		q("instances-admin", boss, "Instances", map[string]any{"count": true}),
		q("instances-adminrole", adminRole, "Instances", nil),
		q("flow-rows", reporter, "expense_report", map[string]any{"orderBy": "items desc"}),
		q("tasks-reporter", reporter, "Tasks", nil),
		q("tasks-admin", boss, "Tasks", map[string]any{"filter": map[string]any{"Status": "open"}}),
		q("steps", reporter, "Steps", nil),
		q("workflows", reporter, "Workflows", nil),
		q("workflows-admin", boss, "Workflows", map[string]any{"orderBy": "Name"}),
		q("audit-admin", boss, "AuditEvents", map[string]any{"filter": map[string]any{"Event": map[string]any{"startswith": "token"}}, "top": 3}),
		q("count", reporter, "Instances/$count", nil),
		q("count-filtered", reporter, "expense_report/$count", map[string]any{"filter": map[string]any{"urgent": true}}),
		q("select", reporter, "expense_report", map[string]any{"select": []string{"Id", "amount"}, "top": 1}),

		// Every supported filter operator, through odata-query's syntax.
		f("eq", map[string]any{"amount": 31.5}),
		f("ne", map[string]any{"items": map[string]any{"ne": 2}}),
		f("gt", map[string]any{"amount": map[string]any{"gt": 31.5}}),
		f("ge", map[string]any{"amount": map[string]any{"ge": 31.5}}),
		f("lt", map[string]any{"items": map[string]any{"lt": 3}}),
		f("le", map[string]any{"items": map[string]any{"le": 3}}),
		f("and", map[string]any{"items": map[string]any{"gt": 1}, "urgent": true}),
		f("or", map[string]any{"or": []any{map[string]any{"items": 1}, map[string]any{"items": 5}}}),
		f("not", map[string]any{"not": map[string]any{"urgent": true}}),
		f("contains", map[string]any{"note": map[string]any{"contains": "em-"}}),
		f("startswith", map[string]any{"note": map[string]any{"startswith": "item-4"}}),
		f("endswith", map[string]any{"note": map[string]any{"endswith": "-5"}}),
		f("null", map[string]any{"note": nil}),
		f("bool", map[string]any{"urgent": false}),
		f("datetime", map[string]any{"StartedAt": map[string]any{"ge": date(before)}, "Status": "waiting"}),
		f("datetime-future", map[string]any{"StartedAt": map[string]any{"gt": date(time.Now().Add(time.Hour))}}),

		// Paging to the end through @odata.nextLink.
		{Name: "paged", Base: base, Token: reporter, Path: "Instances", Follow: true, MaxPageSize: 2,
			Query: map[string]any{"count": true, "orderBy": "StartedAt"}},
		{Name: "paged-top", Base: base, Token: reporter, Path: "Instances", Follow: true, MaxPageSize: 2,
			Query: map[string]any{"top": 3}},
		{Name: "paged-skip", Base: base, Token: reporter, Path: "Instances", Follow: true, MaxPageSize: 2,
			Query: map[string]any{"skip": 1, "orderBy": "StartedAt"}},

		// Malformed: 400; unsupported: 501; both in the OData error format.
		{Name: "bad-filter", Base: base, Token: reporter, Path: "Instances", Raw: raw("?$filter=Status%20eq")},
		{Name: "bad-property", Base: base, Token: reporter, Path: "Instances", Raw: raw("?$filter=Nope%20eq%201")},
		{Name: "bad-type", Base: base, Token: reporter, Path: "expense_report", Raw: raw("?$filter=amount%20eq%20'x'")},
		{Name: "bad-top", Base: base, Token: reporter, Path: "Instances", Raw: raw("?$top=-1")},
		{Name: "bad-skiptoken", Base: base, Token: reporter, Path: "Instances", Raw: raw("?$skiptoken=eyJuIjotMX0")},
		{Name: "bad-option", Base: base, Token: reporter, Path: "Instances", Raw: raw("?$frobnicate=1")},
		{Name: "bad-select", Base: base, Token: reporter, Path: "Instances", Raw: raw("?$select=Password")},
		{Name: "bad-orderby", Base: base, Token: reporter, Path: "Instances", Raw: raw("?$orderby=Status%20sideways")},
		{Name: "expand", Base: base, Token: reporter, Path: "Instances", Raw: raw("?$expand=Steps")},
		{Name: "search", Base: base, Token: reporter, Path: "Instances", Raw: raw("?$search=foo")},
		{Name: "function", Base: base, Token: reporter, Path: "Instances", Raw: raw("?$filter=tolower(Status)%20eq%20'x'")},
		{Name: "in", Base: base, Token: reporter, Path: "Instances", Raw: raw("?$filter=Status%20in%20('a')")},
		{Name: "key", Base: base, Token: reporter, Path: "Instances('x')"},
		// One entity by its key; another's is not found; a key is a key.
		{Name: "entity", Base: base, Token: reporter, Path: "Instances('" + mine[0] + "')"},
		{Name: "entity-named", Base: base, Token: reporter, Path: "expense_report(Id='" + mine[1] + "')", Raw: raw("?$select=Id,amount")},
		{Name: "entity-steps", Base: base, Token: reporter, Path: "Steps(Instance='" + mine[0] + "',Seq=1)"},
		{Name: "entity-theirs", Base: base, Token: reporter, Path: "Instances('" + theirs[0] + "')"},
		{Name: "entity-smuggled", Base: base, Token: reporter, Path: "Instances('x'%20or%20Status%20eq%20'waiting')"},
		{Name: "entity-half-key", Base: base, Token: reporter, Path: "Steps(Instance='" + mine[0] + "')"},
		{Name: "entity-filter", Base: base, Token: reporter, Path: "Instances('" + mine[0] + "')", Raw: raw("?$filter=Status%20eq%20'x'")},
		{Name: "entity-property", Base: base, Token: reporter, Path: "Instances('" + mine[0] + "')/Status"},
		{Name: "unknown-set", Base: base, Token: reporter, Path: "Nope"},
		{Name: "audit-user", Base: base, Token: reporter, Path: "AuditEvents"},
		{Name: "hidden-user", Base: base, Token: reporter, Path: "payroll_secret"},
		{Name: "no-token", Base: base, Path: "Instances"},
		{Name: "no-scope", Base: base, Token: noScope, Path: "Instances"},
	}
	res := peer(t, reqs)

	// The service document and $metadata: the flow's set with a typed
	// property per input field; AuditEvents and the flow the caller may
	// not start are an administrator's only.
	names := func(r result) []string {
		var out []string
		for _, row := range r.Rows {
			out = append(out, row["name"].(string))
		}
		return out
	}
	if r := res["service"]; r.Status != 200 || r.ODataVersion != "4.0" ||
		!slices.Equal(names(r), []string{"Workflows", "Instances", "Tasks", "Steps", "expense_report"}) {
		t.Errorf("service document: %d %v", r.Status, names(r))
	}
	if r := res["service-admin"]; !slices.Contains(names(r), "AuditEvents") || !slices.Contains(names(r), "payroll_secret") {
		t.Errorf("administrator's service document: %v", names(r))
	}
	md := res["metadata"].Metadata
	if md == nil {
		t.Fatalf("metadata: %+v", res["metadata"])
	}
	flowType, ok := md.Types[md.Sets["expense_report"]]
	if !ok {
		t.Fatalf("metadata: no type for expense_report: %+v", md.Sets)
	}
	for prop, want := range map[string]string{"amount": "Edm.Double", "items": "Edm.Int64", "note": "Edm.String",
		"urgent": "Edm.Boolean", "Id": "Edm.String", "StartedAt": "Edm.DateTimeOffset", "Status": "Edm.String"} {
		if got := flowType.Props[prop].Type; got != want {
			t.Errorf("metadata: expense_report.%s is %q, want %s", prop, got, want)
		}
	}
	if !slices.Equal(flowType.Keys, []string{"Id"}) || !flowType.Props["note"].Nullable || flowType.Props["Id"].Nullable {
		t.Errorf("metadata: keys %v, nullability %+v", flowType.Keys, flowType.Props)
	}
	if !slices.Equal(md.FilterFunctions, []string{"contains", "startswith", "endswith"}) {
		t.Errorf("metadata: filter functions %v", md.FilterFunctions)
	}
	if _, ok := md.Sets["AuditEvents"]; ok {
		t.Error("metadata lists AuditEvents to a non-administrator")
	}
	if steps := md.Types[md.Sets["Steps"]]; !slices.Equal(steps.Keys, []string{"Instance", "Seq"}) {
		t.Errorf("metadata: Steps keys %v", steps.Keys)
	}
	if _, ok := res["metadata-admin"].Metadata.Sets["AuditEvents"]; !ok {
		t.Error("metadata hides AuditEvents from an administrator")
	}

	// Who sees which rows: as in the REST API.
	ids := func(r result, field string) []string {
		var out []string
		for _, row := range r.Rows {
			out = append(out, fmt.Sprint(row[field]))
		}
		sort.Strings(out)
		return out
	}
	sorted := func(l []string) []string { l = slices.Clone(l); sort.Strings(l); return l }
	if r := res["instances"]; r.Status != 200 || !slices.Equal(ids(r, "Id"), sorted(mine)) || r.Count == nil || *r.Count != 5 {
		t.Errorf("reporter's instances: %d %v (count %v), want %v", r.Status, ids(r, "Id"), r.Count, mine)
	}
	if r := res["instances-other"]; !slices.Equal(ids(r, "Id"), sorted(theirs)) {
		t.Errorf("other's instances: %v, want %v", ids(r, "Id"), theirs)
	}
	if r := res["instances-admin"]; r.Count == nil || *r.Count != 8 || len(r.Rows) != 8 {
		t.Errorf("administrator's instances: %d rows, count %v", len(r.Rows), r.Count)
	}
	// The same rows as the REST API's list, for the caller and for an administrator.
	for who, tok := range map[string]string{"instances": e.token(t, "reporter", "workflows.read"), "instances-admin": e.token(t, "boss", "workflows.read admin")} {
		status, body := e.call(t, "GET", "/api/v1/instances?limit=100", tok, nil)
		if status != 200 {
			t.Fatalf("REST list: %d %v", status, body)
		}
		var rest []string
		for _, it := range body["items"].([]any) {
			rest = append(rest, it.(map[string]any)["id"].(string))
		}
		if got := ids(res[who], "Id"); !slices.Equal(got, sorted(rest)) {
			t.Errorf("%s: OData rows %v, REST API rows %v", who, got, sorted(rest))
		}
	}
	if r := res["instances-adminrole"]; len(r.Rows) != 0 {
		t.Errorf("role admin without scope admin sees %d instances; the REST API shows it none", len(r.Rows))
	}
	if r := res["tasks-reporter"]; r.Status != 200 || len(r.Rows) != 0 {
		t.Errorf("the reporter is no approver but sees tasks: %d %v", r.Status, r.Rows)
	}
	if r := res["tasks-admin"]; len(r.Rows) != 8 || r.Rows[0]["Type"] != "task" || !strings.HasPrefix(r.Rows[0]["Title"].(string), "Approve") {
		t.Errorf("administrator's tasks: %v", r.Rows)
	}
	for _, row := range res["steps"].Rows {
		if !slices.Contains(mine, row["Instance"].(string)) {
			t.Errorf("the reporter sees a step of %v", row["Instance"])
		}
	}
	if r := res["steps"]; len(r.Rows) == 0 {
		t.Error("the reporter sees no steps of its instances")
	}
	if w := names2(res["workflows"], "Name"); !slices.Equal(w, []string{"expense-report"}) {
		t.Errorf("reporter's workflows: %v", w)
	}
	if w := names2(res["workflows-admin"], "Name"); !slices.Equal(w, []string{"expense-report", "payroll.secret"}) {
		t.Errorf("administrator's workflows: %v", w)
	}
	if r := res["audit-admin"]; r.Status != 200 || len(r.Rows) == 0 || len(r.Rows) > 3 || !strings.HasPrefix(r.Rows[0]["Event"].(string), "token") {
		t.Errorf("audit events: %d %v", r.Status, r.Rows)
	}

	// Counts and the typed columns.
	if r := res["count"]; r.Count == nil || *r.Count != 5 {
		t.Errorf("/$count: %+v", r)
	}
	if r := res["count-filtered"]; r.Count == nil || *r.Count != 2 {
		t.Errorf("/$count with a filter: %+v", r)
	}
	if r := res["flow-rows"]; len(r.Rows) != 5 {
		t.Errorf("flow rows: %v", r.Rows)
	} else {
		row := r.Rows[0] // items 5
		if row["amount"] != 52.5 || row["items"] != float64(5) || row["note"] != "item-5" || row["urgent"] != false ||
			row["Workflow"] != "expense-report" || row["Status"] != "waiting" {
			t.Errorf("typed columns: %v", row)
		}
		if _, err := time.Parse(time.RFC3339Nano, row["StartedAt"].(string)); err != nil {
			t.Errorf("StartedAt: %v", err)
		}
		if n := r.Rows[2]; n["note"] != nil {
			t.Errorf("a missing input field: %v", n)
		}
	}
	if r := res["select"]; len(r.Rows) != 1 || len(r.Rows[0]) != 2 || !strings.HasSuffix(r.Context, "$metadata#expense_report(Id,amount)") {
		t.Errorf("$select: %v, context %q", r.Rows, r.Context)
	}

	for name, want := range map[string]string{
		"eq": "3", "ne": "1 3 4 5", "gt": "4 5", "ge": "3 4 5", "lt": "1 2", "le": "1 2 3", "and": "2 4",
		"or": "1 5", "not": "1 3 5", "contains": "1 2 4 5", "startswith": "4", "endswith": "5", "null": "3",
		"bool": "1 3 5", "datetime": "1 2 3 4 5", "datetime-future": "",
	} {
		r := res[name]
		if got := strings.Join(names2(r, "items"), " "); r.Status != 200 || got != want {
			t.Errorf("filter %s: %d items %q, want %q (%+v)", name, r.Status, got, want, r.Error)
		}
	}

	// Paging.
	if r := res["paged"]; r.Pages != 3 || len(r.Rows) != 5 || r.Count == nil || *r.Count != 5 || !slices.Equal(ids(r, "Id"), sorted(mine)) ||
		!slices.Equal(r.PageCounts, []float64{5, 5, 5}) {
		t.Errorf("paging: %d pages, %d rows, count %v, on each page %v", r.Pages, len(r.Rows), r.Count, r.PageCounts)
	}
	if r := res["paged-top"]; r.Pages != 2 || len(r.Rows) != 3 {
		t.Errorf("paging with $top=3: %d pages, %d rows", r.Pages, len(r.Rows))
	}
	if r := res["paged-skip"]; r.Pages != 2 || len(r.Rows) != 4 || r.Rows[0]["Id"] != mine[1] {
		t.Errorf("paging with $skip=1: %d pages, %v", r.Pages, r.Rows)
	}

	// Errors.
	for name, want := range map[string]int{"bad-filter": 400, "bad-property": 400, "bad-type": 400, "bad-top": 400, "bad-skiptoken": 400,
		"bad-option": 400, "bad-select": 400, "bad-orderby": 400, "expand": 501, "search": 501, "function": 501,
		"in": 501, "key": 404, "unknown-set": 404, "audit-user": 403, "hidden-user": 404,
		"entity-theirs": 404, "entity-smuggled": 400, "entity-half-key": 400, "entity-filter": 400, "entity-property": 501} {
		r := res[name]
		if r.Status != want || r.Error == nil || r.Error.Code == "" || r.Error.Message == "" {
			t.Errorf("%s: %d %+v, want %d with an OData error", name, r.Status, r.Error, want)
		}
	}
	if r := res["entity"]; r.Status != 200 || len(r.Rows) != 1 || r.Rows[0]["Id"] != mine[0] || !strings.HasSuffix(r.Context, "$metadata#Instances/$entity") {
		t.Errorf("one instance by its key: %d %q %v", r.Status, r.Context, r.Rows)
	}
	if r := res["entity-named"]; r.Status != 200 || len(r.Rows) != 1 || r.Rows[0]["Id"] != mine[1] || r.Rows[0]["amount"] != 21.0 || len(r.Rows[0]) != 2 {
		t.Errorf("one flow row by its named key, two properties: %d %v", r.Status, r.Rows)
	}
	if r := res["entity-steps"]; r.Status != 200 || len(r.Rows) != 1 || r.Rows[0]["Instance"] != mine[0] || r.Rows[0]["Seq"] != 1.0 {
		t.Errorf("one step by its two-part key: %d %v", r.Status, r.Rows)
	}
	if r := res["bad-property"]; r.Error == nil || !strings.Contains(r.Error.Message, "Nope") {
		t.Errorf("the error does not name the property: %+v", r.Error)
	}
	if r := res["no-token"]; r.Status != 401 || r.AuthError == "" {
		t.Errorf("no token: %d", r.Status)
	}
	if r := res["no-scope"]; r.Status != 403 || r.AuthError != "insufficient_scope" {
		t.Errorf("no data.read scope: %d", r.Status)
	}

	// The switch: off, the API answers 403 in its own error format; the
	// admin API lists it with the others.
	if status, body := e.call(t, "PUT", "/api/v1/admin/api-switches", boss, map[string]any{"odata": false}); status != 200 || body["odata"] != false || body["scim"] != false {
		t.Fatalf("switch off: %d %v", status, body)
	}
	off := peer(t, []req{q("off", reporter, "Instances", nil)})["off"]
	if off.Status != 403 || off.Error == nil || off.Error.Code != "api_disabled" {
		t.Errorf("switched off: %d %+v", off.Status, off.Error)
	}
	if status, body := e.call(t, "PUT", "/api/v1/admin/api-switches", boss, map[string]any{"odata": true}); status != 200 || body["odata"] != true {
		t.Fatalf("switch on: %d %v", status, body)
	}
}

// names2 lists a field of a result's rows, in order.
func names2(r result, field string) []string {
	var out []string
	for _, row := range r.Rows {
		out = append(out, fmt.Sprint(row[field]))
	}
	return out
}
