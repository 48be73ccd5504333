package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/authserver"
	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
)

// Paths of the management site's operation pages.
const (
	PathAdmin          = "/admin"
	PathAdminFlows     = "/admin/flows"
	PathAdminFlow      = "/admin/flows/{name}"
	PathAdminExport    = "/admin/flows/{name}/export"
	PathAdminInstances = "/admin/instances"
	PathAdminCancel    = "/admin/instances/{id}/cancel"
	PathAdminAPIs      = "/admin/apis"
	PathAdminAudit     = "/admin/audit"
	PathAdminKeys      = "/admin/keys"
)

// maxFlowBytes bounds a deployed definition, as the admin API does; the
// multipart form around it may add a little.
const (
	maxFlowBytes       = 1 << 20
	maxFlowUploadBytes = maxFlowBytes + 64<<10
)

// adminPageSize is how many rows a list page of the management site shows.
const adminPageSize = 50

// flowVersionsShown bounds the versions listed on a flow's page.
const flowVersionsShown = 20

// Operations is what the operation pages need beyond the portal's. Every
// change goes through the operation the admin API and the commands use,
// which audits it; nothing here writes to the store itself.
type Operations struct {
	// Flows deploys definitions and cancels instances (the engine).
	Flows FlowOperations
	// Store reads what the pages list and counts.
	Store OperationsStore
	// Switches reads and flips the API switches (the admin API's own
	// operation, so this server's cache follows at once).
	Switches APISwitches
	// RotateKey makes a new active signing key (`flowgate keys rotate`'s
	// operation) and loads it, so JWKS publishes it at once.
	RotateKey func(ctx context.Context, by string, idToken bool) (store.SigningKey, error)
}

// FlowOperations is what the pages need from the engine to change flows
// and instances.
type FlowOperations interface {
	// Deploy is the operation behind POST /api/v1/admin/flows.
	Deploy(ctx context.Context, source []byte, filename, by string) (*flow.Definition, bool, error)
	// Cancel is the operation behind POST /api/v1/instances/{id}/cancel.
	Cancel(ctx context.Context, id string, c engine.Caller) (store.Instance, error)
}

// OperationsStore is what the pages read from the store.
type OperationsStore interface {
	store.Dashboard
	ListFlows(ctx context.Context, p store.Page) ([]store.FlowVersion, string, error)
	GetFlow(ctx context.Context, name string, version int) (store.FlowVersion, error)
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, string, error)
	ListSigningKeys(ctx context.Context, now time.Time) ([]store.SigningKey, error)
}

// APISwitches are the API switches by name.
type APISwitches interface {
	APISwitches(ctx context.Context) (map[string]bool, error)
	SetAPISwitches(ctx context.Context, by string, set map[string]bool) (map[string]bool, error)
}

// registerAdminOperations adds the management site's pages about running
// work: the dashboard, flows, instances, API switches, audit log and keys.
func (h *Handler) registerAdminOperations(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathAdmin+"/{$}", h.dashboard)
	mux.HandleFunc("GET "+PathAdmin, h.dashboard)
	mux.HandleFunc("GET "+PathAdminFlows, h.adminFlows)
	mux.HandleFunc("POST "+PathAdminFlows, h.deployFlow)
	mux.HandleFunc("GET "+PathAdminFlow, h.adminFlow)
	mux.HandleFunc("GET "+PathAdminExport, h.exportFlow)
	mux.HandleFunc("GET "+PathAdminInstances, h.adminInstances)
	mux.HandleFunc("POST "+PathAdminCancel, h.adminCancel)
	mux.HandleFunc("GET "+PathAdminAPIs, h.adminAPIs)
	mux.HandleFunc("POST "+PathAdminAPIs, h.setAPIs)
	mux.HandleFunc("GET "+PathAdminAudit, h.adminAudit)
	mux.HandleFunc("GET "+PathAdminKeys, h.adminKeys)
	mux.HandleFunc("POST "+PathAdminKeys, h.rotateKey)
}

// by is how a change made on a page names who made it, as the API does
// for a token: the user's principal.
func (u *user) by() string { return u.caller.User.ID }

// adminView is a page of the management site.
func (u *user) adminView(nav, title string, data any) view {
	v := u.view(title, data)
	v.Nav = nav
	return v
}

// postedAdminForm is adminUser for a POST: the form is read (bounded) and
// its CSRF token checked before anything else, so a forged post changes
// nothing (403).
func (h *Handler) postedAdminForm(w http.ResponseWriter, r *http.Request) *user {
	u := h.adminUser(w, r)
	if u == nil || !h.readForm(w, r, u, maxFormBytes) {
		return nil
	}
	return u
}

// seeOther ends a change with a redirect to the page that shows it.
func seeOther(w http.ResponseWriter, r *http.Request, target string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// ----- dashboard -----

// dashboardPage is what the dashboard shows.
type dashboardPage struct {
	Instances      store.InstanceTotals
	OpenTasks      int64
	OverdueTasks   int64
	SignIns        int64
	SignInFailures int64
	Failures       []store.Instance
	// DayStart is the start of the UTC day the failed count begins at.
	DayStart  time.Time
	PerDay    chart
	PerHour   chart
	Generated time.Time
}

// signInEvents are the audit events the dashboard counts as sign-ins.
func signInEvents() []string { return []string{audit.LoginSuccess, audit.LoginFailure} }

// dashboard is GET /admin.
func (h *Handler) dashboard(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil {
		return
	}
	ctx, st := r.Context(), h.o.Operations.Store
	now := h.o.Now().UTC()
	today := now.Truncate(24 * time.Hour)
	p := dashboardPage{DayStart: today, Generated: now}
	var err error
	if p.Instances, err = st.InstanceTotals(ctx, today); err != nil {
		h.pageError(w, u, "counting instances", err)
		return
	}
	if p.OpenTasks, err = st.CountOpenTasks(ctx); err != nil {
		h.pageError(w, u, "counting tasks", err)
		return
	}
	if p.OverdueTasks, err = st.CountOverdueTasks(ctx, now); err != nil {
		h.pageError(w, u, "counting overdue tasks", err)
		return
	}
	// Sign-ins of the last 24 h, this very microsecond included: one
	// bucket as wide as the window.
	from, to := now.Add(-24*time.Hour), now.Add(time.Microsecond)
	last, err := st.AuditBuckets(ctx, signInEvents(), from, to, to.Sub(from))
	if err != nil {
		h.pageError(w, u, "counting sign-ins", err)
		return
	}
	for _, b := range last {
		if b.Key == audit.OutcomeFailure {
			p.SignInFailures += b.Count
		} else {
			p.SignIns += b.Count
		}
	}
	admin := u.caller
	admin.Admin = true
	if p.Failures, _, err = h.o.Engine.ListInstances(ctx, admin, store.InstanceFilter{Status: store.StatusFailed}, store.Page{Limit: 10}); err != nil {
		h.pageError(w, u, "listing failed instances", err)
		return
	}
	daysFrom := today.Add(-13 * 24 * time.Hour)
	days, err := st.InstanceBuckets(ctx, daysFrom, today.Add(24*time.Hour), 24*time.Hour)
	if err != nil {
		h.pageError(w, u, "counting instances per day", err)
		return
	}
	p.PerDay = newChart("per-day", "Instances started per day, by outcome (last 14 days, UTC)", daysFrom, 14, 24*time.Hour, "Jan 2",
		instanceSeries(), days)
	hoursFrom := now.Truncate(time.Hour).Add(-23 * time.Hour)
	hours, err := st.AuditBuckets(ctx, signInEvents(), hoursFrom, hoursFrom.Add(24*time.Hour), time.Hour)
	if err != nil {
		h.pageError(w, u, "counting sign-ins per hour", err)
		return
	}
	p.PerHour = newChart("per-hour", "Sign-ins and failures per hour (last 24 hours, UTC)", hoursFrom, 24, time.Hour, "15:04",
		[]series{{Keys: []string{audit.OutcomeSuccess}, Label: "signed in", Class: "s-ok"}, {Keys: []string{audit.OutcomeFailure}, Label: "failed", Class: "s-failed"}}, hours)
	h.render(w, http.StatusOK, "admin-dashboard", u.adminView("admin", "Dashboard", p))
}

// instanceSeries are the outcomes the per-day chart stacks; instances
// still going count as "in progress".
func instanceSeries() []series {
	return []series{
		{Keys: []string{store.StatusCompleted}, Label: "completed", Class: "s-ok"},
		{Keys: []string{store.StatusFailed}, Label: "failed", Class: "s-failed"},
		{Keys: []string{store.StatusCancelled}, Label: "cancelled", Class: "s-cancelled"},
		{Keys: []string{store.StatusRunning, store.StatusWaiting}, Label: "in progress", Class: "s-open"},
	}
}

// ----- flows -----

// flowsPage lists the flows with the deploy form.
type flowsPage struct {
	Flows []store.FlowVersion
	Next  string
	// Source is what was pasted or uploaded, shown again after a refusal.
	Source string
	// SourceError and Problems say what is wrong with Source.
	SourceError string
	Problems    []string
}

// adminFlows is GET /admin/flows.
func (h *Handler) adminFlows(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil {
		return
	}
	h.renderFlows(w, r, u, http.StatusOK, flowsPage{})
}

func (h *Handler) renderFlows(w http.ResponseWriter, r *http.Request, u *user, status int, p flowsPage) {
	var err error
	p.Flows, p.Next, err = h.o.Operations.Store.ListFlows(r.Context(), store.Page{Limit: adminPageSize, Cursor: r.URL.Query().Get("cursor")})
	if errors.Is(err, store.ErrInvalidCursor) {
		h.statusPage(w, http.StatusBadRequest, u, "Bad page link", "This page link is not valid; start again from the first page.")
		return
	}
	if err != nil {
		h.pageError(w, u, "listing flows", err)
		return
	}
	v := u.adminView("admin/flows", "Flows", p)
	if n := r.URL.Query().Get("deployed"); n != "" && status == http.StatusOK {
		// Only a flow that exists is named, so no link can make the
		// page say anything else.
		if name, ver, ok := strings.Cut(n, "@"); ok {
			if fv, err := h.o.Operations.Store.GetFlow(r.Context(), name, atoi(ver)); err == nil {
				v.Notice = fmt.Sprintf("Flow %s version %d is deployed.", fv.Name, fv.Version)
			}
		}
	}
	h.render(w, status, "admin-flows", v)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return -1
	}
	return n
}

// deployFlow is POST /admin/flows: a definition pasted or uploaded, sent
// to the engine's Deploy (the admin API's operation, audited as
// flow.deployed). A refusal shows every problem with its line, and the
// source again to fix.
func (h *Handler) deployFlow(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFlowUploadBytes)
	if err := r.ParseMultipartForm(maxFlowUploadBytes); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			// The CSRF token may be what was cut off; either way nothing
			// was read, so nothing changes.
			h.renderFlows(w, r, u, http.StatusRequestEntityTooLarge,
				flowsPage{SourceError: fmt.Sprintf("The definition is larger than %d KiB.", maxFlowBytes>>10)})
			return
		}
		h.statusPage(w, http.StatusBadRequest, u, "The form could not be read", "Go back and try again.")
		return
	} else if err != nil {
		if err := r.ParseForm(); err != nil {
			h.statusPage(w, http.StatusBadRequest, u, "The form could not be read", "Go back and try again.")
			return
		}
	}
	if !authserver.CheckCSRF(r) {
		h.csrfRefused(w, u)
		return
	}
	src := []byte(r.PostFormValue("source"))
	if f, hdr, err := r.FormFile("file"); err == nil {
		data, rerr := io.ReadAll(io.LimitReader(f, maxFlowBytes+1))
		_ = f.Close()
		if rerr != nil {
			h.pageError(w, u, "reading an uploaded flow", rerr)
			return
		}
		if hdr.Size > 0 || len(data) > 0 {
			src = data
		}
	}
	p := flowsPage{Source: string(src)}
	switch {
	case len(strings.TrimSpace(string(src))) == 0:
		p.SourceError = "Paste a flow definition (YAML or JSON) or choose a file."
		h.renderFlows(w, r, u, http.StatusBadRequest, p)
		return
	case len(src) > maxFlowBytes:
		p.Source = ""
		p.SourceError = fmt.Sprintf("The definition is larger than %d KiB.", maxFlowBytes>>10)
		h.renderFlows(w, r, u, http.StatusRequestEntityTooLarge, p)
		return
	}
	// No filename, as for the API: problems give line and column.
	def, _, err := h.o.Operations.Flows.Deploy(r.Context(), src, "", u.by())
	if err != nil {
		ps := flow.Problems(err)
		if len(ps) == 0 {
			var one *flow.Problem
			if !errors.As(err, &one) {
				h.pageError(w, u, "deploying a flow", err)
				return
			}
			ps = []*flow.Problem{one}
		}
		p.SourceError = "The definition was not deployed:"
		for _, pr := range ps {
			p.Problems = append(p.Problems, pr.Error())
		}
		h.renderFlows(w, r, u, http.StatusBadRequest, p)
		return
	}
	seeOther(w, r, PathAdminFlows+"?deployed="+url.QueryEscape(fmt.Sprintf("%s@%d", def.Name, def.Version)))
}

// flowPage is one flow: its versions and one version's source.
type flowPage struct {
	Flow     store.FlowVersion
	Latest   int
	Versions []store.FlowVersion
}

// adminFlow is GET /admin/flows/{name}?version=N: the versions, and the
// source of one (the latest without version).
func (h *Handler) adminFlow(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil {
		return
	}
	fv, latest, ok := h.flowVersion(w, r, u)
	if !ok {
		return
	}
	p := flowPage{Flow: fv, Latest: latest}
	for v := latest; v >= 1 && v > latest-flowVersionsShown; v-- {
		older, err := h.o.Operations.Store.GetFlow(r.Context(), fv.Name, v)
		if err != nil {
			h.pageError(w, u, "reading a flow version", err)
			return
		}
		older.Source = nil
		p.Versions = append(p.Versions, older)
	}
	h.render(w, http.StatusOK, "admin-flow", u.adminView("admin/flows", "Flow "+fv.Name, p))
}

// flowVersion reads the flow of the path at ?version= (the latest
// without), answering 404 for a flow or version that does not exist.
func (h *Handler) flowVersion(w http.ResponseWriter, r *http.Request, u *user) (store.FlowVersion, int, bool) {
	name := r.PathValue("name")
	latest, err := h.o.Operations.Store.GetFlow(r.Context(), name, 0)
	if errors.Is(err, store.ErrNotFound) {
		h.notFound(w, u)
		return store.FlowVersion{}, 0, false
	}
	if err != nil {
		h.pageError(w, u, "reading a flow", err)
		return store.FlowVersion{}, 0, false
	}
	fv := latest
	if s := r.URL.Query().Get("version"); s != "" && s != strconv.Itoa(latest.Version) {
		n := atoi(s)
		if n < 1 {
			h.notFound(w, u)
			return store.FlowVersion{}, 0, false
		}
		if fv, err = h.o.Operations.Store.GetFlow(r.Context(), name, n); errors.Is(err, store.ErrNotFound) {
			h.notFound(w, u)
			return store.FlowVersion{}, 0, false
		} else if err != nil {
			h.pageError(w, u, "reading a flow version", err)
			return store.FlowVersion{}, 0, false
		}
	}
	return fv, latest.Version, true
}

// exportFlow is GET /admin/flows/{name}/export?version=N: the source as
// deployed, as a file to save.
func (h *Handler) exportFlow(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil {
		return
	}
	fv, _, ok := h.flowVersion(w, r, u)
	if !ok {
		return
	}
	// A definition deployed as JSON is exported as JSON: YAML's parser
	// reads it too, but its editor would not say so.
	ext, ctype := "yaml", "application/yaml; charset=utf-8"
	if t := bytes.TrimSpace(fv.Source); len(t) > 0 && t[0] == '{' {
		ext, ctype = "json", "application/json"
	}
	securityHeaders(w.Header())
	w.Header().Set("Content-Type", ctype)
	// Flow names are letters, digits, - and _: safe in the header as is.
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-v%d.%s"`, fv.Name, fv.Version, ext))
	_, _ = w.Write(fv.Source)
}

// ----- instances -----

// instancesPage is every instance, filtered.
type instancesPage struct {
	Flow, Status string
	Statuses     []string
	Instances    []store.Instance
	Next         string
	FilterError  string
}

// NextURL is the link to the next page, with the filter.
func (p instancesPage) NextURL() string {
	q := url.Values{"cursor": {p.Next}}
	if p.Flow != "" {
		q.Set("flow", p.Flow)
	}
	if p.Status != "" {
		q.Set("status", p.Status)
	}
	return PathAdminInstances + "?" + q.Encode()
}

// adminInstances is GET /admin/instances?flow=&status=&cursor=.
func (h *Handler) adminInstances(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil {
		return
	}
	q := r.URL.Query()
	p := instancesPage{Flow: strings.TrimSpace(q.Get("flow")), Status: q.Get("status"), Statuses: instanceStatuses()}
	v := u.adminView("admin/instances", "Instances", &p)
	if p.Status != "" && !slices.Contains(p.Statuses, p.Status) {
		p.FilterError = fmt.Sprintf("%q is not an instance status.", p.Status)
		h.render(w, http.StatusBadRequest, "admin-instances", v)
		return
	}
	admin := u.caller
	admin.Admin = true
	var err error
	p.Instances, p.Next, err = h.o.Engine.ListInstances(r.Context(), admin, store.InstanceFilter{Workflow: p.Flow, Status: p.Status},
		store.Page{Limit: adminPageSize, Cursor: q.Get("cursor")})
	if errors.Is(err, store.ErrInvalidCursor) {
		h.statusPage(w, http.StatusBadRequest, u, "Bad page link", "This page link is not valid; start again from the first page.")
		return
	}
	if err != nil {
		h.pageError(w, u, "listing instances", err)
		return
	}
	if id := q.Get("cancelled"); id != "" {
		for _, in := range p.Instances {
			if in.ID == id && in.Status == store.StatusCancelled {
				v.Notice = "Instance " + id + " is cancelled."
			}
		}
	}
	h.render(w, http.StatusOK, "admin-instances", v)
}

// adminCancel is POST /admin/instances/{id}/cancel: the engine's Cancel,
// the operation behind the API's cancel (audited as instance.cancelled).
func (h *Handler) adminCancel(w http.ResponseWriter, r *http.Request) {
	u := h.postedAdminForm(w, r)
	if u == nil {
		return
	}
	id := r.PathValue("id")
	_, err := h.o.Operations.Flows.Cancel(r.Context(), id, u.caller)
	switch {
	case err == nil:
		seeOther(w, r, PathAdminInstances+"?cancelled="+url.QueryEscape(id))
	case errors.Is(err, store.ErrNotFound):
		h.notFound(w, u)
	case errors.Is(err, engine.ErrEnded):
		h.statusPage(w, http.StatusConflict, u, "Already ended", err.Error())
	case errors.Is(err, engine.ErrStopping):
		w.Header().Set("Retry-After", "5")
		h.statusPage(w, http.StatusServiceUnavailable, u, "Try again", "This server is shutting down; try again in a few seconds.")
	default:
		h.pageError(w, u, "cancelling an instance", err)
	}
}

// ----- API switches -----

// apisPage lists the switches.
type apisPage struct {
	Switches []apiSwitch
}

type apiSwitch struct {
	Name, About string
	On          bool
}

// switchAbout says what each switch turns on.
func switchAbout(name string) string {
	switch name {
	case "workflow":
		return "The Workflow REST API: workflows, instances, history and tasks under /api/v1/."
	case "invoke":
		return "Invoking flows as HTTP endpoints: /api/v1/flows/{name}/invoke."
	case "basic_auth":
		return "HTTP Basic sign-in (user name and password) on the APIs, besides bearer tokens."
	}
	return ""
}

func (h *Handler) adminAPIs(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil {
		return
	}
	sw, err := h.o.Operations.Switches.APISwitches(r.Context())
	if err != nil {
		h.pageError(w, u, "reading the API switches", err)
		return
	}
	v := u.adminView("admin/apis", "API switches", switchesPage(sw))
	if r.URL.Query().Get("saved") == "1" {
		v.Notice = "The API switches are saved. Other servers on this database follow within seconds."
	}
	h.render(w, http.StatusOK, "admin-apis", v)
}

func switchesPage(sw map[string]bool) apisPage {
	var p apisPage
	for _, name := range slices.Sorted(maps.Keys(sw)) {
		p.Switches = append(p.Switches, apiSwitch{Name: name, About: switchAbout(name), On: sw[name]})
	}
	return p
}

// setAPIs is POST /admin/apis: every switch the page shows, on when its
// box is ticked, through the admin API's operation (audited as
// api_switch.changed for each that changed).
func (h *Handler) setAPIs(w http.ResponseWriter, r *http.Request) {
	u := h.postedAdminForm(w, r)
	if u == nil {
		return
	}
	cur, err := h.o.Operations.Switches.APISwitches(r.Context())
	if err != nil {
		h.pageError(w, u, "reading the API switches", err)
		return
	}
	set := map[string]bool{}
	for name := range cur {
		set[name] = r.PostForm.Get(name) == "on"
	}
	if _, err := h.o.Operations.Switches.SetAPISwitches(r.Context(), u.by(), set); err != nil {
		h.pageError(w, u, "saving the API switches", err)
		return
	}
	seeOther(w, r, PathAdminAPIs+"?saved=1")
}

// ----- audit log -----

// auditPage is the audit log with its filter.
type auditPage struct {
	// Query is the filter as typed; Errors are its problems by field.
	Query  map[string]string
	Errors map[string]string
	// Fields are the text fields of the filter form.
	Fields []auditField
	Events []string
	Rows   []store.AuditEvent
	Next   string
}

// auditField is a text field of the filter form.
type auditField struct {
	Name, Label, Hint, Value, Error string
}

// NextURL is the link to the next page, with the filter.
func (p auditPage) NextURL() string {
	q := url.Values{"cursor": {p.Next}}
	for k, v := range p.Query {
		if v != "" {
			q.Set(k, v)
		}
	}
	return PathAdminAudit + "?" + q.Encode()
}

// auditFields are the filter's fields, as the audit API's parameters.
func auditFields() []string { return []string{"since", "until", "user", "client", "event", "outcome"} }

// adminAudit is GET /admin/audit: audit.ParseQuery, the audit API's
// query, with its problems next to their fields.
func (h *Handler) adminAudit(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil {
		return
	}
	q := r.URL.Query()
	p := auditPage{Query: map[string]string{}, Errors: map[string]string{}, Events: audit.Events()}
	for _, k := range auditFields() {
		p.Query[k] = strings.TrimSpace(q.Get(k))
	}
	f, errs := audit.ParseQuery(func(k string) string { return p.Query[k] }, h.o.Now())
	for _, e := range errs {
		p.Errors[e.Field] = e.Message
	}
	for _, f := range []auditField{
		{Name: "since", Label: "Since", Hint: "A time (2025-01-31T12:00:00Z) or how long ago: 24h, 7d"},
		{Name: "until", Label: "Until", Hint: "The same forms as since"},
		{Name: "user", Label: "User"},
		{Name: "client", Label: "Client id"},
	} {
		f.Value, f.Error = p.Query[f.Name], p.Errors[f.Name]
		p.Fields = append(p.Fields, f)
	}
	v := u.adminView("admin/audit", "Audit log", &p)
	if len(errs) > 0 {
		h.render(w, http.StatusBadRequest, "admin-audit", v)
		return
	}
	f.Page = store.Page{Limit: adminPageSize, Cursor: q.Get("cursor")}
	var err error
	p.Rows, p.Next, err = h.o.Operations.Store.ListAudit(r.Context(), f)
	if errors.Is(err, store.ErrInvalidCursor) {
		h.statusPage(w, http.StatusBadRequest, u, "Bad page link", "This page link is not valid; start again from the first page.")
		return
	}
	if err != nil {
		h.pageError(w, u, "reading the audit log", err)
		return
	}
	h.render(w, http.StatusOK, "admin-audit", v)
}

// ----- signing keys -----

// keyRow is a signing key as the page shows it: never its private part.
type keyRow struct {
	ID, Purpose, Alg string
	CreatedAt        time.Time
	// RetireAfter is zero for the active key.
	RetireAfter time.Time
}

func (h *Handler) adminKeys(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil {
		return
	}
	keys, err := h.o.Operations.Store.ListSigningKeys(r.Context(), h.o.Now())
	if err != nil {
		h.pageError(w, u, "listing signing keys", err)
		return
	}
	rows := make([]keyRow, 0, len(keys))
	for _, k := range keys {
		rows = append(rows, keyRow{ID: k.ID, Purpose: k.Purpose, Alg: k.Alg, CreatedAt: k.CreatedAt, RetireAfter: k.RetireAfter})
	}
	v := u.adminView("admin/keys", "Signing keys", struct{ Keys []keyRow }{rows})
	if id := r.URL.Query().Get("rotated"); id != "" {
		for _, k := range rows {
			if k.ID == id {
				v.Notice = "The new key " + k.ID + " signs from now on; the previous one stays published until its tokens expire."
			}
		}
	}
	h.render(w, http.StatusOK, "admin-keys", v)
}

// rotateKey is POST /admin/keys: `flowgate keys rotate`'s operation
// (audited as keys.rotated), for the access-token key or, with
// purpose=id, the ID-token key.
func (h *Handler) rotateKey(w http.ResponseWriter, r *http.Request) {
	u := h.postedAdminForm(w, r)
	if u == nil {
		return
	}
	purpose := r.PostForm.Get("purpose")
	if purpose != authserver.PurposeAccess && purpose != authserver.PurposeID {
		h.statusPage(w, http.StatusBadRequest, u, "Which key?", "Choose the access-token key or the ID-token key.")
		return
	}
	k, err := h.o.Operations.RotateKey(r.Context(), u.by(), purpose == authserver.PurposeID)
	if err != nil {
		h.pageError(w, u, "rotating a signing key", err)
		return
	}
	seeOther(w, r, PathAdminKeys+"?rotated="+url.QueryEscape(k.ID))
}
