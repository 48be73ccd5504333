// Package odata is the Data API (docs/api.md): a read-only OData v4
// service under /odata/v4/ for reporting tools (Power BI, Excel, Tableau).
// It lists the entity sets Workflows, Instances, Tasks, Steps, AuditEvents
// (administrators only) and one per flow with a typed property for each of
// the flow's input fields, describes them in $metadata (CSDL XML), and
// answers $filter, $select, $orderby, $top, $skip and $count with pages of
// at most 1,000 rows linked by @odata.nextLink.
//
// Every query runs in the database: the $filter text is parsed into the
// store's filter tree (filter.go) and the store compiles it to
// parameterised SQL. A caller sees the rows the REST API would show it:
// the engine decides which flows it may start, and the scope handed to
// the store is the REST API's (own instances and tasks, everything for an
// administrator, who needs role and scope admin).
package odata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/principal"
	"github.com/flowgate/flowgate/internal/resource"
	"github.com/flowgate/flowgate/internal/store"
)

// Root is the service root's path.
const Root = "/odata/v4/"

// Scope is the token scope the Data API needs.
const Scope = "data.read"

// PageSize is the most rows one answer holds; more are behind
// @odata.nextLink.
const PageSize = 1000

// Options is what New needs; Store, Validator and Enabled are required.
type Options struct {
	Store store.DataReader
	// Engine says which flows a caller may start; nil leaves out the
	// flows' entity sets and Workflows is empty for everyone but
	// administrators.
	Engine    *engine.Engine
	Validator *resource.Validator
	// Enabled reports whether the API switch apis.odata is on.
	Enabled func(ctx context.Context) bool
	// PublicURL is Flowgate's public URL: the base of @odata.context and
	// @odata.nextLink.
	PublicURL string
	Logger    *slog.Logger
	// Registerer receives the query counters; nil registers none.
	Registerer prometheus.Registerer
	// AuthorizationURI, when set, is added to the challenge of a 401
	// (EntraAuthorizationURI), so that Power Query clients find where to
	// sign in.
	AuthorizationURI string
}

// Service serves the Data API.
type Service struct {
	o       Options
	base    string
	queries *prometheus.CounterVec
	rows    prometheus.Counter
}

// New builds the service. It panics when a required option is missing, a
// wiring mistake.
func New(o Options) *Service {
	if o.Store == nil || o.Validator == nil || o.Enabled == nil {
		panic("odata: Options need Store, Validator and Enabled")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Service{o: o, base: strings.TrimRight(o.PublicURL, "/") + strings.TrimSuffix(Root, "/"),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowgate_odata_queries_total",
			Help: "Data API (OData) requests by entity set kind and outcome.",
		}, []string{"set", "outcome"}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowgate_odata_rows_total",
			Help: "Rows the Data API (OData) returned.",
		}),
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(s.queries, s.rows)
	}
	return s
}

// Register mounts the service on mux.
func (s *Service) Register(mux *http.ServeMux) {
	var h http.Handler = http.HandlerFunc(s.serve)
	h = s.withChallenge(s.o.Validator.Middleware(s.o.Validator.RequireScope(Scope, h)))
	h = s.switched(h)
	mux.Handle(Root, h)
	mux.Handle(strings.TrimSuffix(Root, "/"), h)
}

// switched answers 403 in the OData error format while apis.odata is off.
func (s *Service) switched(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if !s.o.Enabled(r.Context()) {
			writeError(w, &Error{Status: http.StatusForbidden, Code: "api_disabled",
				Message: "the Data API is disabled (an administrator can switch it on: apis.odata, or PUT /api/v1/admin/api-switches)"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// callerOf is the request's principal as the engine sees it, decided
// exactly as for the REST API: an administrator holds role and scope admin.
func callerOf(r *http.Request) engine.Caller {
	p, ok := resource.PrincipalFrom(r.Context())
	if !ok {
		return engine.Caller{}
	}
	return engine.Caller{
		User:  flow.User{ID: p.ID, Kind: string(p.Kind), Subject: p.Subject, Issuer: p.IssuerName, Roles: p.Roles},
		Admin: p.CanAdminister(),
	}
}

// writeError writes the OData JSON error format.
func writeError(w http.ResponseWriter, e *Error) {
	body := map[string]any{"code": e.Code, "message": e.Message}
	if e.Target != "" {
		body["target"] = e.Target
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": body})
}

func (s *Service) fail(w http.ResponseWriter, r *http.Request, setKind string, err error) {
	var oe *Error
	if !errors.As(err, &oe) {
		if errors.Is(err, store.ErrDataField) {
			oe = badRequest("", "%s", err.Error())
		} else {
			s.o.Logger.ErrorContext(r.Context(), "data API query failed", "path", r.URL.Path, "err", err)
			oe = &Error{Status: http.StatusInternalServerError, Code: "InternalError", Message: "the query could not be answered; the server log says why"}
		}
	}
	outcome := "bad_request"
	switch {
	case oe.Status == http.StatusNotImplemented:
		outcome = "not_implemented"
	case oe.Status == http.StatusForbidden || oe.Status == http.StatusNotFound:
		outcome = "refused"
	case oe.Status >= 500:
		outcome = "error"
	}
	s.queries.WithLabelValues(setKind, outcome).Inc()
	writeError(w, oe)
}

// serve dispatches on the path below the root: "" (service document),
// $metadata, a set, or a set's $count.
func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.fail(w, r, "other", &Error{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed",
			Message: fmt.Sprintf("the Data API is read-only: %s is not allowed", r.Method)})
		return
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(Root, "/")), "/")
	c := callerOf(r)
	m, err := buildModel(r.Context(), s.o.Engine, c)
	if err != nil {
		s.fail(w, r, "other", err)
		return
	}
	switch rest {
	case "":
		s.serviceDocument(w, r, m)
		return
	case "$metadata":
		s.metadata(w, r, m)
		return
	}
	name, count := rest, false
	if n, ok := strings.CutSuffix(rest, "/$count"); ok {
		name, count = n, true
	}
	set := m.lookup(name)
	if set == nil {
		if i := strings.IndexAny(name, "(/"); i > 0 && m.lookup(name[:i]) != nil {
			set = m.lookup(name[:i])
			if pred, ok := strings.CutSuffix(name[i:], ")"); ok && name[i] == '(' && !count && !strings.Contains(pred, ")") {
				s.entity(w, r, c, m, set, pred[1:])
				return
			}
			s.fail(w, r, setKind(set), notImplemented("", "%s: addressing properties or navigation is not supported by this service; read the entity (%s(key)) or use $filter on the entity set", rest, set.name))
			return
		}
		if name == "AuditEvents" {
			s.fail(w, r, "AuditEvents", &Error{Status: http.StatusForbidden, Code: "Forbidden",
				Message: c.ID + " may not read AuditEvents: that takes role admin and a token with scope admin"})
			return
		}
		s.fail(w, r, "other", &Error{Status: http.StatusNotFound, Code: "NotFound",
			Message: fmt.Sprintf("no entity set %q; the service document at %s lists them", name, Root)})
		return
	}
	opts, err := parseOptions(r.URL.RawQuery, set)
	if err != nil {
		s.fail(w, r, setKind(set), err)
		return
	}
	if err := applyPrefer(r, &opts); err != nil {
		s.fail(w, r, setKind(set), err)
		return
	}
	q := store.DataQuery{Set: set.set, Workflow: set.workflow, Inputs: set.inputs, Filter: opts.filter,
		Select: opts.sel, OrderBy: opts.order, Scope: scopeOf(c, m)}
	if count {
		n, err := s.o.Store.CountData(r.Context(), q)
		if err != nil {
			s.fail(w, r, setKind(set), err)
			return
		}
		s.queries.WithLabelValues(setKind(set), "ok").Inc()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("OData-Version", "4.0")
		_, _ = fmt.Fprint(w, n)
		return
	}
	s.collection(w, r, set, q, opts)
}

// keyLiteralRE is one key value of an entity's address: a string in
// single quotes (” for a quote) or an integer. Nothing else is taken, so
// a key cannot smuggle more of a filter in.
var keyLiteralRE = regexp.MustCompile(`^(?:'(?:[^']|'')*'|-?[0-9]+)$`)

// entity serves one entity by its key: Set('id'), Set(Id='id'),
// Steps(Instance='id',Seq=3). Only $select applies; none is 404.
func (s *Service) entity(w http.ResponseWriter, r *http.Request, c engine.Caller, m *model, set *entitySet, pred string) {
	keys := store.DataKey(set.set)
	parts := strings.Split(pred, ",")
	var conds []string
	seen := map[string]bool{}
	for _, part := range parts {
		name, lit, named := strings.Cut(part, "=")
		if !named {
			if len(keys) != 1 || len(parts) != 1 {
				s.fail(w, r, setKind(set), badRequest("", "%s has a key of %d properties (%s): name each, as %s", set.name, len(keys), strings.Join(keys, ", "), keyExample(keys)))
				return
			}
			name, lit = keys[0], part
		}
		name, lit = strings.TrimSpace(name), strings.TrimSpace(lit)
		if !slices.Contains(keys, name) || seen[name] {
			s.fail(w, r, setKind(set), badRequest("", "%q is not a key property of %s, or is given twice (its key: %s)", name, set.name, strings.Join(keys, ", ")))
			return
		}
		seen[name] = true
		if !keyLiteralRE.MatchString(lit) {
			s.fail(w, r, setKind(set), badRequest("", "%s: a key value is a string in single quotes or an integer, not %q", set.name, lit))
			return
		}
		conds = append(conds, name+" eq "+lit)
	}
	if len(conds) != len(keys) {
		s.fail(w, r, setKind(set), badRequest("", "%s has a key of %d properties (%s): give each, as %s", set.name, len(keys), strings.Join(keys, ", "), keyExample(keys)))
		return
	}
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.fail(w, r, setKind(set), badRequest("", "the query string is not valid URL encoding: %v", err))
		return
	}
	for name := range vals {
		if strings.HasPrefix(name, "$") && name != "$select" && name != "$format" {
			s.fail(w, r, setKind(set), badRequest(name, "%s does not apply to a single entity; only $select does", name))
			return
		}
	}
	raw := url.Values{"$filter": {strings.Join(conds, " and ")}}
	if sel := vals.Get("$select"); sel != "" {
		raw.Set("$select", sel)
	}
	opts, err := parseOptions(raw.Encode(), set)
	if err != nil {
		s.fail(w, r, setKind(set), err)
		return
	}
	q := store.DataQuery{Set: set.set, Workflow: set.workflow, Inputs: set.inputs, Filter: opts.filter,
		Select: opts.sel, Scope: scopeOf(c, m), Limit: 1}
	rows, err := s.o.Store.QueryData(r.Context(), q)
	if err != nil {
		s.fail(w, r, setKind(set), err)
		return
	}
	if len(rows) == 0 {
		// Not there, or not the caller's to see: the same answer.
		s.fail(w, r, setKind(set), &Error{Status: http.StatusNotFound, Code: "NotFound", Message: fmt.Sprintf("no %s entity with key %s", set.name, pred)})
		return
	}
	fields := set.all()
	if len(opts.sel) > 0 {
		fields = fields[:0]
		for _, n := range opts.sel {
			f, _ := set.field(n)
			fields = append(fields, f)
		}
	}
	var b strings.Builder
	ctxURL := s.base + "/$metadata#" + set.name
	if len(opts.sel) > 0 {
		ctxURL += "(" + strings.Join(opts.sel, ",") + ")"
	}
	b.WriteString(`{"@odata.context":`)
	writeJSONString(&b, ctxURL+"/$entity")
	for _, f := range fields {
		b.WriteByte(',')
		writeJSONString(&b, f.Name)
		b.WriteByte(':')
		writeValue(&b, rows[0][f.Name])
	}
	b.WriteString("}\n")
	s.queries.WithLabelValues(setKind(set), "ok").Inc()
	s.rows.Add(1)
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
	w.Header().Set("OData-Version", "4.0")
	_, _ = w.Write([]byte(b.String()))
}

// keyExample shows how an entity of a set with these key properties is
// addressed.
func keyExample(keys []string) string {
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"=…")
	}
	return "(" + strings.Join(parts, ",") + ")"
}

// setKind is the metrics label of a set: its name for the fixed sets,
// "flow" for a flow's (so that the label's values stay few).
func setKind(e *entitySet) string {
	if e.workflow != "" {
		return "flow"
	}
	return e.name
}

// scopeOf is who sees what, as in the REST API.
func scopeOf(c engine.Caller, m *model) store.DataScope {
	if c.Admin {
		return store.DataScope{All: true}
	}
	if c.ID == "" {
		return store.DataScope{}
	}
	return store.DataScope{StartedBy: c.ID, Assignees: principal.AssigneeKeys(c.ID, c.Roles), Workflows: m.flows}
}

func (s *Service) collection(w http.ResponseWriter, r *http.Request, set *entitySet, q store.DataQuery, o options) {
	pageSize := PageSize
	if o.maxPage > 0 && o.maxPage < pageSize {
		pageSize = o.maxPage
	}
	// $skiptoken says how many rows earlier pages of this answer
	// returned and, in key order, the last key: the next page starts
	// after that key instead of skipping rows, so that the last page of a
	// large set costs what the first does.
	tok := o.skiptoken
	remaining := -1
	if o.top >= 0 {
		remaining = max(o.top-tok.N, 0)
		pageSize = min(pageSize, remaining)
	}
	keyed := len(q.OrderBy) == 0
	key := store.DataKey(set.set)
	if keyed && len(q.Select) > 0 {
		// The key must come back to make the next link; it is not shown.
		for _, k := range key {
			if !slices.Contains(q.Select, k) {
				q.Select = append(slices.Clone(q.Select), k)
			}
		}
	}
	var rows []store.DataRow
	more := false
	if pageSize > 0 {
		q.Skip, q.Limit = o.skip+tok.N, pageSize+1
		if keyed && len(tok.After) > 0 {
			q.Skip, q.After = 0, tok.After
		}
		var err error
		if rows, err = s.o.Store.QueryData(r.Context(), q); err != nil {
			s.fail(w, r, setKind(set), err)
			return
		}
		if len(rows) > pageSize {
			rows, more = rows[:pageSize], true
		}
		if remaining >= 0 && tok.N+len(rows) >= o.top {
			more = false
		}
	}
	var total int64
	if o.count {
		var err error
		if total, err = s.o.Store.CountData(r.Context(), q); err != nil {
			s.fail(w, r, setKind(set), err)
			return
		}
	}
	fields := set.all()
	if len(o.sel) > 0 {
		fields = fields[:0]
		for _, n := range o.sel {
			f, _ := set.field(n)
			fields = append(fields, f)
		}
	}

	var b strings.Builder
	ctxURL := s.base + "/$metadata#" + set.name
	if len(o.sel) > 0 {
		ctxURL += "(" + strings.Join(o.sel, ",") + ")"
	}
	b.WriteString(`{"@odata.context":`)
	writeJSONString(&b, ctxURL)
	if o.count {
		b.WriteString(`,"@odata.count":`)
		b.WriteString(strconv.FormatInt(total, 10))
	}
	b.WriteString(`,"value":[`)
	for i, row := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		for j, f := range fields {
			if j > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, f.Name)
			b.WriteByte(':')
			writeValue(&b, row[f.Name])
		}
		b.WriteByte('}')
	}
	b.WriteByte(']')
	if more {
		next := skipToken{N: tok.N + len(rows)}
		if keyed {
			last := rows[len(rows)-1]
			for _, k := range key {
				next.After = append(next.After, last[k])
			}
		}
		b.WriteString(`,"@odata.nextLink":`)
		writeJSONString(&b, s.nextLink(r, next.encode()))
	}
	b.WriteString("}\n")
	s.queries.WithLabelValues(setKind(set), "ok").Inc()
	s.rows.Add(float64(len(rows)))
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
	w.Header().Set("OData-Version", "4.0")
	if o.maxPage > 0 {
		w.Header().Set("Preference-Applied", "odata.maxpagesize="+strconv.Itoa(o.maxPage))
	}
	_, _ = w.Write([]byte(b.String()))
}

// nextLink is the request's own URL with $skiptoken moved on.
func (s *Service) nextLink(r *http.Request, token string) string {
	vals, _ := url.ParseQuery(r.URL.RawQuery) // parsed once already
	vals.Set("$skiptoken", token)
	path := strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(Root, "/"))
	return s.base + path + "?" + vals.Encode()
}

func writeJSONString(b *strings.Builder, s string) {
	enc, _ := json.Marshal(s) // a string always encodes
	b.Write(enc)
}

func writeValue(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case string:
		writeJSONString(b, x)
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		enc, err := json.Marshal(x)
		if err != nil { // NaN or infinity, which JSON cannot hold
			b.WriteString("null")
			return
		}
		b.Write(enc)
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case time.Time:
		writeJSONString(b, x.UTC().Format("2006-01-02T15:04:05.999999Z"))
	default:
		enc, _ := json.Marshal(fmt.Sprint(x))
		b.Write(enc)
	}
}

func (s *Service) serviceDocument(w http.ResponseWriter, r *http.Request, m *model) {
	type entry struct {
		Name string `json:"name"`
		Kind string `json:"kind"`
		URL  string `json:"url"`
	}
	doc := struct {
		Context string  `json:"@odata.context"`
		Value   []entry `json:"value"`
	}{Context: s.base + "/$metadata", Value: []entry{}}
	for _, e := range m.sets {
		doc.Value = append(doc.Value, entry{Name: e.name, Kind: "EntitySet", URL: e.name})
	}
	s.queries.WithLabelValues("service", "ok").Inc()
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
	w.Header().Set("OData-Version", "4.0")
	_ = json.NewEncoder(w).Encode(doc)
}
