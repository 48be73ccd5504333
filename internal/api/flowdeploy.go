package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/store"
)

// flowVersionJSON is a deployed version as the admin API lists it: the
// workflow shape plus who deployed it and when.
type flowVersionJSON struct {
	flow.Workflow
	Filename   string `json:"filename"`
	DeployedBy string `json:"deployed_by"`
	DeployedAt string `json:"deployed_at"`
}

// flowSourceJSON is one version with its source, as deployed.
type flowSourceJSON struct {
	flowVersionJSON
	LatestVersion int    `json:"latest_version"`
	Source        string `json:"source"`
}

// flowDeployedJSON answers a deploy; Created is false when the source was
// the latest version's already and nothing was stored.
type flowDeployedJSON struct {
	flow.Workflow
	Created bool `json:"created"`
}

// deployTypes are the media types a definition may be sent as.
func deployTypes() []string {
	return []string{"application/yaml", "application/x-yaml", "text/yaml", "application/json"}
}

// deployFlow serves POST /api/v1/admin/flows: the body is a definition,
// YAML or JSON. 201 when it made a new version, 200 when it is the
// latest version already; 400 lists every problem of an invalid one.
func (a *API) deployFlow(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	ok := err == nil
	if ok {
		ok = false
		for _, t := range deployTypes() {
			ok = ok || mt == t
		}
	}
	if !ok {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type",
			fmt.Sprintf("a flow definition is sent as YAML or JSON (Content-Type: one of %v)", deployTypes()), "")
		return
	}
	src, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			tooLarge(w)
			return
		}
		badRequest(w, "", "the body could not be read: "+err.Error())
		return
	}
	by := callerOf(r).ID
	// No filename: problems then give line and column only, which is
	// what an upload has.
	def, created, err := a.engine.Deploy(r.Context(), src, "", by)
	if err != nil {
		if ps, texts := definitionProblems(err); len(ps) > 0 {
			writeProblems(w, "invalid_flow", ps, texts)
			return
		}
		a.serverError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		a.log.InfoContext(r.Context(), "flow deployed", "flow", def.Name, "version", def.Version, "by", by)
	}
	w.Header().Set("Location", flowVersionPath(def.Name, def.Version))
	writeJSON(w, status, flowDeployedJSON{Workflow: def.Summary(), Created: created})
}

func flowVersionPath(name string, version int) string {
	return "/api/v1/admin/flows/" + url.PathEscape(name) + "?version=" + strconv.Itoa(version)
}

// definitionProblems lists the *flow.Problem values of a deploy error,
// as fields and as the texts Parse wrote; nil when it holds none (the
// store failed instead).
func definitionProblems(err error) ([]problemJSON, []string) {
	var (
		out   []problemJSON
		texts []string
	)
	for _, e := range leaves(err) {
		var p *flow.Problem
		if errors.As(e, &p) {
			out = append(out, problemJSON{File: p.File, Line: p.Line, Column: p.Column, Flow: p.Flow, Step: p.Step,
				Field: p.Field, Message: p.Err.Error()})
			texts = append(texts, p.Error())
		}
	}
	return out, texts
}

// listFlowVersions serves GET /api/v1/admin/flows: the latest version of
// every flow, by name, whoever may start it.
func (a *API) listFlowVersions(w http.ResponseWriter, r *http.Request) {
	p, ok := page(w, r)
	if !ok {
		return
	}
	vs, next, err := a.st.ListFlows(r.Context(), p)
	if err != nil {
		a.listError(w, r, err)
		return
	}
	out := make([]flowVersionJSON, 0, len(vs))
	for _, v := range vs {
		fv, err := a.flowVersion(r, v)
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		out = append(out, fv)
	}
	writeJSON(w, http.StatusOK, newList(out, next))
}

func (a *API) flowVersion(r *http.Request, v store.FlowVersion) (flowVersionJSON, error) {
	def, err := a.engine.Definition(r.Context(), v.Name, v.Version)
	if err != nil {
		return flowVersionJSON{}, err
	}
	return flowVersionJSON{Workflow: def.Summary(), Filename: v.Filename, DeployedBy: v.DeployedBy, DeployedAt: stamp(v.DeployedAt)}, nil
}

// getFlowVersion serves GET /api/v1/admin/flows/{name}?version=N: a
// version (the latest without version) with its source.
func (a *API) getFlowVersion(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	version := 0
	if s := r.URL.Query().Get("version"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			badRequest(w, "version", fmt.Sprintf("version must be a whole number from 1, not %q", s))
			return
		}
		version = n
	}
	latest, err := a.st.GetFlow(r.Context(), name, 0)
	if err != nil {
		a.storeError(w, r, err, "flow", name)
		return
	}
	v := latest
	if version != 0 && version != latest.Version {
		if v, err = a.st.GetFlow(r.Context(), name, version); errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, "not_found",
				fmt.Sprintf("flow %q has no version %d (its latest is %d)", name, version, latest.Version), "version")
			return
		} else if err != nil {
			a.serverError(w, r, err)
			return
		}
	}
	fv, err := a.flowVersion(r, v)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, flowSourceJSON{flowVersionJSON: fv, LatestVersion: latest.Version, Source: string(v.Source)})
}
