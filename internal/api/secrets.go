package api

import (
	"net/http"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/store"
)

// namedSecretJSON is a named secret as the API shows it: never its value.
type namedSecretJSON struct {
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

func toNamedSecretJSON(n store.NamedSecret) namedSecretJSON {
	return namedSecretJSON{Name: n.Name, CreatedAt: timeString(n.CreatedAt), UpdatedAt: timeString(n.UpdatedAt)}
}

// secretRequest is the body of POST (name and value) and PUT (value; the
// name is the path's).
type secretRequest struct {
	Name  string  `json:"name"`
	Value *string `json:"value"`
}

func (a *API) listSecrets(w http.ResponseWriter, r *http.Request) {
	p, ok := page(w, r)
	if !ok {
		return
	}
	l, next, err := a.st.ListNamedSecrets(r.Context(), p)
	if err != nil {
		a.listError(w, r, err)
		return
	}
	writePage(w, l, next, toNamedSecretJSON)
}

func (a *API) postSecret(w http.ResponseWriter, r *http.Request) {
	var in secretRequest
	if !decode(w, r, &in) {
		return
	}
	a.setSecret(w, r, in)
}

func (a *API) putSecret(w http.ResponseWriter, r *http.Request) {
	var in secretRequest
	if !decode(w, r, &in) {
		return
	}
	name := r.PathValue("name")
	if in.Name != "" && in.Name != name {
		badRequest(w, "name", "name must be the path's (a secret is renamed by setting the new one and removing the old)")
		return
	}
	in.Name = name
	a.setSecret(w, r, in)
}

// setSecret creates or replaces a secret: 201 when it is new, 200 when
// it replaced one. The answer never carries the value.
func (a *API) setSecret(w http.ResponseWriter, r *http.Request, in secretRequest) {
	if err := flow.CheckSecretName(in.Name); err != nil {
		badRequest(w, "name", err.Error())
		return
	}
	if in.Value == nil {
		badRequest(w, "value", "value: required")
		return
	}
	if err := flow.CheckSecretValue([]byte(*in.Value)); err != nil {
		badRequest(w, "value", "value: "+err.Error())
		return
	}
	n, created, err := a.changes.SetSecret(r.Context(), actor(r), in.Name, []byte(*in.Value))
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/api/v1/admin/secrets/"+in.Name)
	}
	writeJSON(w, status, toNamedSecretJSON(n))
}

func (a *API) deleteSecret(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := a.changes.RemoveSecret(r.Context(), actor(r), name); err != nil {
		a.storeError(w, r, err, "secret", name)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
