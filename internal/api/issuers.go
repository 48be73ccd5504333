package api

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/flowgate/flowgate/internal/admin"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/store"
)

// issuerJSON is a trusted issuer, in answers and in POST/PUT bodies.
type issuerJSON struct {
	Name         string            `json:"name"`
	Issuer       string            `json:"issuer"`
	MetadataURL  string            `json:"metadata_url"`
	Audience     string            `json:"audience"`
	SubjectClaim string            `json:"subject_claim"`
	ScopeClaim   string            `json:"scope_claim"`
	RolesClaim   string            `json:"roles_claim"`
	ScopeMap     map[string]string `json:"scope_map"`
	// Source, CreatedAt and UpdatedAt are output only; a body that sends
	// them is not refused, so that a GET answer can be PUT back.
	Source    string `json:"source,omitempty"`
	CreatedAt string `json:"created_at,omitempty"`
	UpdatedAt string `json:"updated_at,omitempty"`
}

func toIssuerJSON(t store.TrustedIssuer) issuerJSON {
	return issuerJSON{
		Name: t.Name, Issuer: t.Issuer, MetadataURL: t.MetadataURL, Audience: t.Audience,
		SubjectClaim: t.SubjectClaim, ScopeClaim: t.ScopeClaim, RolesClaim: t.RolesClaim,
		ScopeMap: nonNilMap(t.ScopeMap), Source: t.Source,
		CreatedAt: timeString(t.CreatedAt), UpdatedAt: timeString(t.UpdatedAt),
	}
}

// validIssuer validates a body with the configuration's rules and the
// defaults a file entry gets; false when it answered a 400.
func validIssuer(w http.ResponseWriter, in issuerJSON) (store.TrustedIssuer, bool) {
	t, err := admin.CheckIssuer(config.TrustedIssuer{
		Name: in.Name, Issuer: in.Issuer, MetadataURL: in.MetadataURL, Audience: in.Audience,
		SubjectClaim: in.SubjectClaim, ScopeClaim: in.ScopeClaim, RolesClaim: in.RolesClaim,
		ScopeMap: maps.Clone(in.ScopeMap),
	}, store.SourceAPI)
	if err != nil {
		fieldErrors(w, err)
		return store.TrustedIssuer{}, false
	}
	return t, true
}

func (a *API) listIssuers(w http.ResponseWriter, r *http.Request) {
	p, ok := page(w, r)
	if !ok {
		return
	}
	l, next, err := a.st.ListTrustedIssuers(r.Context(), p)
	if err != nil {
		a.listError(w, r, err)
		return
	}
	out := make([]issuerJSON, len(l))
	for i, t := range l {
		out[i] = toIssuerJSON(t)
	}
	writeJSON(w, http.StatusOK, newList(out, next))
}

func (a *API) getIssuer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	t, err := a.st.GetTrustedIssuer(r.Context(), name)
	if err != nil {
		a.storeError(w, r, err, "trusted issuer", name)
		return
	}
	writeJSON(w, http.StatusOK, toIssuerJSON(t))
}

func (a *API) createIssuer(w http.ResponseWriter, r *http.Request) {
	var in issuerJSON
	if !decode(w, r, &in) {
		return
	}
	t, ok := validIssuer(w, in)
	if !ok {
		return
	}
	t.CreatedAt = time.Now().UTC()
	t.UpdatedAt = t.CreatedAt
	if err := a.changes.CreateIssuer(r.Context(), actor(r), t); err != nil {
		a.issuerConflict(w, r, err, t.Name)
		return
	}
	w.Header().Set("Location", "/api/v1/admin/trusted-issuers/"+t.Name)
	writeJSON(w, http.StatusCreated, toIssuerJSON(t))
}

// issuerConflict explains a conflict: the name or the issuer URL is taken.
func (a *API) issuerConflict(w http.ResponseWriter, r *http.Request, err error, name string) {
	if isConflict(err) {
		writeError(w, http.StatusConflict, "conflict",
			fmt.Sprintf("trusted issuer %q or another entry with the same issuer URL already exists", name), "")
		return
	}
	a.storeError(w, r, err, "trusted issuer", name)
}

// putIssuer replaces an issuer. The entry becomes an API one: a config
// entry edited here is rewritten from the file at the next start.
func (a *API) putIssuer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var in issuerJSON
	if !decode(w, r, &in) {
		return
	}
	if in.Name == "" {
		in.Name = name
	} else if in.Name != name {
		badRequest(w, "name", "name cannot be changed (it is the issuer's key)")
		return
	}
	cur, err := a.st.GetTrustedIssuer(r.Context(), name)
	if err != nil {
		a.storeError(w, r, err, "trusted issuer", name)
		return
	}
	t, ok := validIssuer(w, in)
	if !ok {
		return
	}
	t.CreatedAt, t.UpdatedAt = cur.CreatedAt, time.Now().UTC()
	if err := a.changes.UpdateIssuer(r.Context(), actor(r), t); err != nil {
		a.issuerConflict(w, r, err, name)
		return
	}
	writeJSON(w, http.StatusOK, toIssuerJSON(t))
}

func (a *API) deleteIssuer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := a.changes.RemoveIssuer(r.Context(), actor(r), name); err != nil {
		a.storeError(w, r, err, "trusted issuer", name)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// issuerTest is what POST …/test found. It is always answered with 200:
// the test ran; OK says whether the issuer is usable.
type issuerTest struct {
	OK             bool   `json:"ok"`
	MetadataURL    string `json:"metadata_url"`
	ExpectedIssuer string `json:"expected_issuer"`
	Issuer         string `json:"issuer,omitempty"`
	IssuerMatch    bool   `json:"issuer_match"`
	JWKSURI        string `json:"jwks_uri,omitempty"`
	Keys           int    `json:"keys"`
	Error          string `json:"error,omitempty"`
}

// testIssuer reads the issuer's metadata and key set the way the
// validator will, and reports what it found (admin.ProbeIssuer).
func (a *API) testIssuer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	t, err := a.st.GetTrustedIssuer(r.Context(), name)
	if err != nil {
		a.storeError(w, r, err, "trusted issuer", name)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	p := admin.ProbeIssuer(ctx, a.client, t)
	writeJSON(w, http.StatusOK, issuerTest{
		OK: p.OK, MetadataURL: p.MetadataURL, ExpectedIssuer: p.ExpectedIssuer, Issuer: p.Issuer,
		IssuerMatch: p.IssuerMatch, JWKSURI: p.JWKSURI, Keys: p.Keys, Error: p.Err,
	})
}
