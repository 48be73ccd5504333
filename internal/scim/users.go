package scim

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	elimity "github.com/elimity-com/scim"
	scimerr "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/scim2/filter-parser/v2"

	"github.com/flowgate/flowgate/internal/account"
	"github.com/flowgate/flowgate/internal/principal"
	"github.com/flowgate/flowgate/internal/resource"
	"github.com/flowgate/flowgate/internal/store"
)

// by is who a request's changes are audited as.
func by(r *http.Request) string {
	if p, ok := resource.PrincipalFrom(r.Context()); ok {
		return p.ID
	}
	return ""
}

func invalidValue(format string, args ...any) error {
	e := scimerr.ScimErrorInvalidValue
	e.Detail = fmt.Sprintf(format, args...)
	return e
}

func mutability(format string, args ...any) error {
	e := scimerr.ScimErrorMutability
	e.Detail = fmt.Sprintf(format, args...)
	return e
}

// storeError maps the store's errors onto SCIM's.
func storeError(err error, id string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return scimerr.ScimErrorResourceNotFound(id)
	case errors.Is(err, store.ErrConflict):
		e := scimerr.ScimErrorUniqueness
		e.Detail = id + " exists already"
		return e
	}
	return err
}

func version(t time.Time) string { return `W/"` + strconv.FormatInt(t.UnixMicro(), 36) + `"` }

// userHandler maps SCIM Users onto Flowgate users: id and userName are the
// username (which cannot change), name.formatted and displayName the
// user's name, the primary email its email, active the opposite of
// disabled.
type userHandler struct{ s *Service }

func (h *userHandler) resourceOf(u store.User, l store.SCIMResource) elimity.Resource {
	attrs := elimity.ResourceAttributes{"userName": u.Username, "active": !u.Disabled}
	if u.Name != "" {
		given, family, _ := strings.Cut(u.Name, " ")
		attrs["name"] = map[string]any{"formatted": u.Name, "givenName": given, "familyName": family}
		attrs["displayName"] = u.Name
	}
	if u.Email != "" {
		attrs["emails"] = []any{map[string]any{"value": u.Email, "type": "work", "primary": true}}
	}
	res := elimity.Resource{ID: u.Username, Attributes: attrs,
		Meta: elimity.Meta{Created: &u.CreatedAt, LastModified: &u.UpdatedAt, Version: version(u.UpdatedAt)}}
	if l.ExternalID != "" {
		res.ExternalID = optional.NewString(l.ExternalID)
	}
	return res
}

// load reads a provisioned user and its link; a user SCIM does not
// manage is not found.
func (h *userHandler) load(r *http.Request, id string) (store.User, store.SCIMResource, error) {
	l, err := h.s.o.Store.GetSCIMResource(r.Context(), store.SCIMUser, id)
	if err != nil {
		return store.User{}, l, storeError(err, id)
	}
	u, err := h.s.o.Store.GetUser(r.Context(), id)
	if err != nil {
		return store.User{}, l, storeError(err, id)
	}
	return u, l, nil
}

// apply sets the user's fields from a resource's attributes (a POST or
// PUT body, already checked against the schema).
func apply(u *store.User, attrs elimity.ResourceAttributes) {
	u.Name, u.Email, u.Disabled = "", "", false
	for k, v := range attrs {
		switch strings.ToLower(k) {
		case "name":
			if n := nameOf(v); n != "" {
				u.Name = n
			}
		case "displayname":
			if s, _ := v.(string); s != "" && u.Name == "" {
				u.Name = s
			}
		case "emails":
			u.Email = primaryEmail(v)
		case "active":
			if b, ok := v.(bool); ok {
				u.Disabled = !b
			}
		}
	}
	// displayName is the better name when both are given.
	if s, _ := attrs["displayName"].(string); s != "" {
		u.Name = s
	}
}

// nameOf reads the name complex attribute: formatted, else given and
// family names.
func nameOf(v any) string {
	m, _ := v.(map[string]any)
	if s, _ := m["formatted"].(string); s != "" {
		return s
	}
	g, _ := m["givenName"].(string)
	f, _ := m["familyName"].(string)
	return strings.TrimSpace(g + " " + f)
}

// primaryEmail picks the primary email of a list, else the first.
func primaryEmail(v any) string {
	first := ""
	for _, e := range listOf(v) {
		m, _ := e.(map[string]any)
		s, _ := m["value"].(string)
		if p, _ := m["primary"].(bool); p && s != "" {
			return s
		}
		if first == "" {
			first = s
		}
	}
	return first
}

func externalID(attrs elimity.ResourceAttributes) string {
	for k, v := range attrs {
		if strings.EqualFold(k, "externalId") {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

// Create implements elimity.ResourceHandler: a new Flowgate user, without
// a password (people sign in through the identity provider).
func (h *userHandler) Create(r *http.Request, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	name, _ := attrs["userName"].(string)
	if err := principal.CheckUsername(name); err != nil {
		return elimity.Resource{}, invalidValue("userName %v", err)
	}
	u := store.User{Username: name}
	apply(&u, attrs)
	now := time.Now().UTC().Truncate(time.Microsecond)
	u.CreatedAt, u.UpdatedAt = now, now
	if err := account.Create(r.Context(), h.s.o.Store, h.s.o.Auditor, by(r), u); err != nil {
		return elimity.Resource{}, storeError(err, "user "+name)
	}
	l := store.SCIMResource{Kind: store.SCIMUser, ID: name, Name: name, ExternalID: externalID(attrs)}
	if err := h.s.o.Store.CreateSCIMResource(r.Context(), l); err != nil {
		return elimity.Resource{}, storeError(err, "user "+name)
	}
	return h.resourceOf(u, l), nil
}

// Get implements elimity.ResourceHandler.
func (h *userHandler) Get(r *http.Request, id string) (elimity.Resource, error) {
	u, l, err := h.load(r, id)
	if err != nil {
		return elimity.Resource{}, err
	}
	return h.resourceOf(u, l), nil
}

// eqFilter returns attribute and value of a filter "attr eq value", the
// form identity providers use to find one resource.
func eqFilter(p elimity.ListRequestParams) (string, string, bool) {
	if p.FilterValidator == nil {
		return "", "", false
	}
	e, ok := p.FilterValidator.GetFilter().(*filter.AttributeExpression)
	if !ok || e.Operator != filter.EQ || e.AttributePath.SubAttribute != nil {
		return "", "", false
	}
	v, ok := e.CompareValue.(string)
	return strings.ToLower(e.AttributePath.AttributeName), v, ok
}

// page cuts one list page out of the matches (startIndex is 1-based).
func page(all []elimity.Resource, p elimity.ListRequestParams) elimity.Page {
	start := min(max(p.StartIndex, 1)-1, len(all))
	end := min(start+max(p.Count, 0), len(all))
	return elimity.Page{TotalResults: len(all), Resources: slices.Clip(all[start:end])}
}

// matches applies the request's filter to a resource. The library
// panics on some filters it accepted (co on a complex attribute without a
// sub-attribute): that is the client's filter at fault, an invalidFilter.
func matches(p elimity.ListRequestParams, res elimity.Resource) (ok bool, err error) {
	if p.FilterValidator == nil {
		return true, nil
	}
	defer func() {
		if recover() != nil {
			e := scimerr.ScimErrorInvalidFilter
			e.Detail = "this filter cannot be applied; compare a sub-attribute, as in emails[value co \"x\"]"
			ok, err = false, e
		}
	}()
	m := map[string]any{"id": res.ID}
	for k, v := range res.Attributes {
		m[k] = v
	}
	if res.ExternalID.Present() {
		m["externalId"] = res.ExternalID.Value()
	}
	return p.FilterValidator.PassesFilter(m) == nil, nil
}

// maxScan bounds how many provisioned users or groups one list reads.
const maxScan = 100_000

// GetAll implements elimity.ResourceHandler. userName eq "…" (how
// identity providers look a user up) reads one user; other filters walk
// the provisioned users.
func (h *userHandler) GetAll(r *http.Request, p elimity.ListRequestParams) (elimity.Page, error) {
	var all []elimity.Resource
	if attr, v, ok := eqFilter(p); ok && attr == "username" {
		if u, l, err := h.load(r, v); err == nil {
			all = append(all, h.resourceOf(u, l))
		}
		return page(all, p), nil
	}
	cursor := ""
	for n := 0; n < maxScan; {
		links, next, err := h.s.o.Store.ListSCIMResources(r.Context(), store.SCIMUser, store.Page{Limit: 500, Cursor: cursor})
		if err != nil {
			return elimity.Page{}, err
		}
		for _, l := range links {
			n++
			u, err := h.s.o.Store.GetUser(r.Context(), l.ID)
			if errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return elimity.Page{}, err
			}
			res := h.resourceOf(u, l)
			ok, err := matches(p, res)
			if err != nil {
				return elimity.Page{}, err
			}
			if ok {
				all = append(all, res)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return page(all, p), nil
}

// save writes the user's new record through account (audited; disabling
// ends the user's sessions and refresh tokens) and the link's external id.
func (h *userHandler) save(r *http.Request, cur, next store.User, l store.SCIMResource, ext string) (elimity.Resource, error) {
	written, err := account.Update(r.Context(), h.s.o.Store, h.s.o.Auditor, by(r), cur, next)
	if err != nil {
		return elimity.Resource{}, err
	}
	if ext != l.ExternalID {
		l.ExternalID = ext
		if err := h.s.o.Store.UpdateSCIMResource(r.Context(), l); err != nil {
			return elimity.Resource{}, storeError(err, l.ID)
		}
	}
	return h.resourceOf(written, l), nil
}

// Replace implements elimity.ResourceHandler (PUT): every attribute as
// given, absent ones cleared; userName cannot change.
func (h *userHandler) Replace(r *http.Request, id string, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	cur, l, err := h.load(r, id)
	if err != nil {
		return elimity.Resource{}, err
	}
	if name, _ := attrs["userName"].(string); name != cur.Username {
		return elimity.Resource{}, mutability("userName %q cannot become %q: Flowgate usernames do not change", cur.Username, name)
	}
	next := cur
	apply(&next, attrs)
	return h.save(r, cur, next, l, externalID(attrs))
}

// Delete implements elimity.ResourceHandler: the user is disabled (as
// `flowgate user disable`: sessions ended, refresh tokens revoked) and no
// longer provisioned. The account stays, since instances, tasks and the
// audit log name it.
func (h *userHandler) Delete(r *http.Request, id string) error {
	if _, _, err := h.load(r, id); err != nil {
		return err
	}
	if _, err := account.SetDisabled(r.Context(), h.s.o.Store, h.s.o.Auditor, by(r), id, true); err != nil {
		return err
	}
	if err := h.s.o.Store.DeleteSCIMResource(r.Context(), store.SCIMUser, id); err != nil {
		return storeError(err, id)
	}
	recordChange(r, h.s, EventUserReleased, "user "+id+": no longer provisioned, left disabled")
	return nil
}

// Patch implements elimity.ResourceHandler, with the paths Entra ID and
// Okta send: active, userName (unchanged only), displayName, name and its
// parts, emails (whole, or emails[type eq "work"].value), externalId, and
// no path with an object of those.
func (h *userHandler) Patch(r *http.Request, id string, ops []elimity.PatchOperation) (elimity.Resource, error) {
	cur, l, err := h.load(r, id)
	if err != nil {
		return elimity.Resource{}, err
	}
	next, ext := cur, l.ExternalID
	for _, op := range ops {
		remove := op.Op == elimity.PatchOperationRemove
		if op.Path == nil {
			m, ok := op.Value.(map[string]any)
			if !ok {
				return elimity.Resource{}, invalidValue("an operation without a path needs an object of attributes")
			}
			for k, v := range m {
				if err := patchUser(&next, &ext, strings.ToLower(k), "", v, remove); err != nil {
					return elimity.Resource{}, err
				}
			}
			continue
		}
		sub := ""
		if op.Path.AttributePath.SubAttribute != nil {
			sub = *op.Path.AttributePath.SubAttribute
		} else if op.Path.SubAttribute != nil {
			sub = *op.Path.SubAttribute
		}
		if err := patchUser(&next, &ext, strings.ToLower(op.Path.AttributePath.AttributeName), strings.ToLower(sub), op.Value, remove); err != nil {
			return elimity.Resource{}, err
		}
	}
	return h.save(r, cur, next, l, ext)
}

// patchUser applies one attribute of a PATCH; attr and sub are lower case,
// as "name.givenName" arrives as ("name", "givenname") or, without a
// path, as a key "name.givenName".
func patchUser(u *store.User, ext *string, attr, sub string, v any, remove bool) error {
	if a, s, ok := strings.Cut(attr, "."); ok && sub == "" {
		attr, sub = a, strings.ToLower(s)
	}
	str, _ := v.(string)
	switch attr {
	case "active":
		b, ok := v.(bool)
		if remove || !ok {
			return invalidValue("active must be true or false")
		}
		u.Disabled = !b
	case "username":
		if remove || str != u.Username {
			return mutability("userName %q cannot change: Flowgate usernames do not change", u.Username)
		}
	case "displayname":
		u.Name = str
		if remove {
			u.Name = ""
		}
	case "name":
		given, family, _ := strings.Cut(u.Name, " ")
		switch sub {
		case "":
			u.Name = nameOf(v)
		case "formatted":
			u.Name = str
		case "givenname":
			u.Name = strings.TrimSpace(str + " " + family)
		case "familyname":
			u.Name = strings.TrimSpace(given + " " + str)
		default:
			return invalidValue("name.%s is not kept by Flowgate", sub)
		}
		if remove && (sub == "" || sub == "formatted") {
			u.Name = ""
		}
	case "emails":
		switch {
		case remove:
			u.Email = ""
		case sub == "value":
			u.Email = str
		case sub == "":
			u.Email = primaryEmail(v)
		default:
			return invalidValue("emails.%s is not kept by Flowgate", sub)
		}
	case "externalid":
		*ext = str
		if remove {
			*ext = ""
		}
	default:
		return invalidValue("attribute %q is not kept by Flowgate", attr)
	}
	return nil
}

// Search implements elimity.ResourceSearcher: POST /Users/.search, the
// same list as GET with its filter and paging in the body.
func (h *userHandler) Search(r *http.Request, p elimity.SearchParams) (elimity.Page, error) {
	return h.GetAll(r, elimity.ListRequestParams{Count: p.Count, StartIndex: p.StartIndex, FilterValidator: p.FilterValidator})
}
