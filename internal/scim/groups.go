package scim

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	elimity "github.com/elimity-com/scim"
	"github.com/elimity-com/scim/optional"
	"github.com/google/uuid"
	"github.com/scim2/filter-parser/v2"

	"github.com/flowgate/flowgate/internal/account"
	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/principal"
	"github.com/flowgate/flowgate/internal/store"
)

func recordChange(r *http.Request, s *Service, event, detail string) {
	audit.Change{Event: event, By: by(r), Detail: detail}.Record(r.Context(), s.o.Auditor)
}

// groupHandler maps SCIM Groups onto roles: a group's displayName is the
// role, its members the provisioned users who hold it. Users Flowgate
// manages itself keep their roles whatever happens to a group.
type groupHandler struct{ s *Service }

// provisioned lists the provisioned users.
func (h *groupHandler) provisioned(r *http.Request) ([]store.User, error) {
	var out []store.User
	cursor := ""
	for len(out) < maxScan {
		links, next, err := h.s.o.Store.ListSCIMResources(r.Context(), store.SCIMUser, store.Page{Limit: 500, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		for _, l := range links {
			u, err := h.s.o.Store.GetUser(r.Context(), l.ID)
			if errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return nil, err
			}
			out = append(out, u)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return out, nil
}

func (h *groupHandler) resourceOf(g store.SCIMResource, users []store.User) elimity.Resource {
	members := []any{}
	for _, u := range users {
		if slices.Contains(u.Roles, g.Name) {
			members = append(members, map[string]any{"value": u.Username, "display": u.Name, "type": "User"})
		}
	}
	res := elimity.Resource{ID: g.ID, Attributes: elimity.ResourceAttributes{"displayName": g.Name, "members": members},
		Meta: elimity.Meta{Created: &g.CreatedAt, LastModified: &g.UpdatedAt, Version: version(g.UpdatedAt)}}
	if g.ExternalID != "" {
		res.ExternalID = optional.NewString(g.ExternalID)
	}
	return res
}

func (h *groupHandler) load(r *http.Request, id string) (store.SCIMResource, []store.User, error) {
	g, err := h.s.o.Store.GetSCIMResource(r.Context(), store.SCIMGroup, id)
	if err != nil {
		return g, nil, storeError(err, id)
	}
	users, err := h.provisioned(r)
	return g, users, err
}

// memberIDs reads the usernames of a members value: [{"value": "alice"}].
func memberIDs(v any) []string {
	var out []string
	for _, m := range listOf(v) {
		if mm, ok := m.(map[string]any); ok {
			if s, _ := mm["value"].(string); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// setRole gives or takes role from the provisioned user name, through
// account (audited as user.updated: roles).
func (h *groupHandler) setRole(r *http.Request, users []store.User, name, role string, has bool) error {
	for i, u := range users {
		if u.Username != name {
			continue
		}
		next := u
		next.Roles = slices.DeleteFunc(slices.Clone(u.Roles), func(x string) bool { return x == role })
		if has {
			next.Roles = append(next.Roles, role)
		}
		written, err := account.Update(r.Context(), h.s.o.Store, h.s.o.Auditor, by(r), u, next)
		if err != nil {
			return err
		}
		users[i] = written
		return nil
	}
	return invalidValue("member %q is not a provisioned user", name)
}

// setMembers makes exactly names hold role among the provisioned users.
func (h *groupHandler) setMembers(r *http.Request, users []store.User, role string, names []string) error {
	for _, n := range names {
		if !slices.ContainsFunc(users, func(u store.User) bool { return u.Username == n }) {
			return invalidValue("member %q is not a provisioned user", n)
		}
	}
	for _, u := range users {
		want := slices.Contains(names, u.Username)
		if slices.Contains(u.Roles, role) != want {
			if err := h.setRole(r, users, u.Username, role, want); err != nil {
				return err
			}
		}
	}
	return nil
}

// rename moves the role of every provisioned member to a new name.
func (h *groupHandler) rename(r *http.Request, g *store.SCIMResource, users []store.User, name string) error {
	if name == g.Name {
		return nil
	}
	if err := principal.Check("role:" + name); err != nil {
		return invalidValue("displayName %v", err)
	}
	old := g.Name
	g.Name = name
	g.UpdatedAt = time.Time{}
	if err := h.s.o.Store.UpdateSCIMResource(r.Context(), *g); err != nil {
		return storeError(err, "group "+name)
	}
	for _, u := range users {
		if slices.Contains(u.Roles, old) {
			if err := h.setRole(r, users, u.Username, old, false); err != nil {
				return err
			}
			if err := h.setRole(r, users, u.Username, name, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// Create implements elimity.ResourceHandler.
func (h *groupHandler) Create(r *http.Request, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	name, _ := attrs["displayName"].(string)
	if err := principal.Check("role:" + name); err != nil {
		return elimity.Resource{}, invalidValue("displayName %v", err)
	}
	g := store.SCIMResource{Kind: store.SCIMGroup, ID: uuid.NewString(), Name: name, ExternalID: externalID(attrs)}
	if err := h.s.o.Store.CreateSCIMResource(r.Context(), g); err != nil {
		return elimity.Resource{}, storeError(err, "group "+name)
	}
	recordChange(r, h.s, EventGroupCreated, "group "+name)
	g, users, err := h.load(r, g.ID)
	if err != nil {
		return elimity.Resource{}, err
	}
	if err := h.setMembers(r, users, name, memberIDs(attrs["members"])); err != nil {
		return elimity.Resource{}, err
	}
	return h.resourceOf(g, users), nil
}

// Get implements elimity.ResourceHandler.
func (h *groupHandler) Get(r *http.Request, id string) (elimity.Resource, error) {
	g, users, err := h.load(r, id)
	if err != nil {
		return elimity.Resource{}, err
	}
	return h.resourceOf(g, users), nil
}

// GetAll implements elimity.ResourceHandler.
func (h *groupHandler) GetAll(r *http.Request, p elimity.ListRequestParams) (elimity.Page, error) {
	users, err := h.provisioned(r)
	if err != nil {
		return elimity.Page{}, err
	}
	var all []elimity.Resource
	cursor := ""
	for {
		gs, next, err := h.s.o.Store.ListSCIMResources(r.Context(), store.SCIMGroup, store.Page{Limit: 500, Cursor: cursor})
		if err != nil {
			return elimity.Page{}, err
		}
		for _, g := range gs {
			res := h.resourceOf(g, users)
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

// Replace implements elimity.ResourceHandler (PUT).
func (h *groupHandler) Replace(r *http.Request, id string, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	g, users, err := h.load(r, id)
	if err != nil {
		return elimity.Resource{}, err
	}
	name, _ := attrs["displayName"].(string)
	if err := h.rename(r, &g, users, name); err != nil {
		return elimity.Resource{}, err
	}
	if ext := externalID(attrs); ext != g.ExternalID {
		g.ExternalID = ext
		if err := h.s.o.Store.UpdateSCIMResource(r.Context(), g); err != nil {
			return elimity.Resource{}, storeError(err, id)
		}
	}
	if err := h.setMembers(r, users, g.Name, memberIDs(attrs["members"])); err != nil {
		return elimity.Resource{}, err
	}
	recordChange(r, h.s, EventGroupUpdated, "group "+g.Name)
	return h.Get(r, id)
}

// Delete implements elimity.ResourceHandler: the role is taken from every
// provisioned member.
func (h *groupHandler) Delete(r *http.Request, id string) error {
	g, users, err := h.load(r, id)
	if err != nil {
		return err
	}
	if err := h.setMembers(r, users, g.Name, nil); err != nil {
		return err
	}
	if err := h.s.o.Store.DeleteSCIMResource(r.Context(), store.SCIMGroup, id); err != nil {
		return storeError(err, id)
	}
	recordChange(r, h.s, EventGroupRemoved, "group "+g.Name)
	return nil
}

// Patch implements elimity.ResourceHandler, with the forms Entra ID and
// Okta send: replace displayName; add or remove members with a value
// list; remove members[value eq "…"]; replace members.
func (h *groupHandler) Patch(r *http.Request, id string, ops []elimity.PatchOperation) (elimity.Resource, error) {
	g, users, err := h.load(r, id)
	if err != nil {
		return elimity.Resource{}, err
	}
	for _, op := range ops {
		attr := ""
		if op.Path != nil {
			attr = strings.ToLower(op.Path.AttributePath.AttributeName)
		}
		if attr == "" {
			// No path: an object of attributes.
			m, _ := op.Value.(map[string]any)
			for k, v := range m {
				switch strings.ToLower(k) {
				case "displayname":
					s, _ := v.(string)
					if err := h.rename(r, &g, users, s); err != nil {
						return elimity.Resource{}, err
					}
				case "members":
					if err := h.patchMembers(r, users, g.Name, op.Op, memberIDs(v)); err != nil {
						return elimity.Resource{}, err
					}
				case "externalid":
					s, _ := v.(string)
					g.ExternalID = s
					if err := h.s.o.Store.UpdateSCIMResource(r.Context(), g); err != nil {
						return elimity.Resource{}, storeError(err, id)
					}
				default:
					return elimity.Resource{}, invalidValue("attribute %q of a group is not kept by Flowgate", k)
				}
			}
			continue
		}
		switch attr {
		case "displayname":
			s, _ := op.Value.(string)
			if err := h.rename(r, &g, users, s); err != nil {
				return elimity.Resource{}, err
			}
		case "externalid":
			s, _ := op.Value.(string)
			g.ExternalID = s
			if err := h.s.o.Store.UpdateSCIMResource(r.Context(), g); err != nil {
				return elimity.Resource{}, storeError(err, id)
			}
		case "members":
			names := memberIDs(op.Value)
			// Okta: remove members[value eq "id"].
			if e, ok := op.Path.ValueExpression.(*filter.AttributeExpression); ok && e.Operator == filter.EQ &&
				strings.EqualFold(e.AttributePath.AttributeName, "value") {
				if s, ok := e.CompareValue.(string); ok {
					names = append(names, s)
				}
			}
			// remove members with neither a value nor a filter empties the group.
			if op.Op == elimity.PatchOperationRemove && len(names) == 0 && op.Path.ValueExpression == nil {
				if err := h.setMembers(r, users, g.Name, nil); err != nil {
					return elimity.Resource{}, err
				}
				continue
			}
			if err := h.patchMembers(r, users, g.Name, op.Op, names); err != nil {
				return elimity.Resource{}, err
			}
		default:
			return elimity.Resource{}, invalidValue("attribute %q of a group is not kept by Flowgate", attr)
		}
	}
	recordChange(r, h.s, EventGroupUpdated, "group "+g.Name)
	return h.resourceOf(g, users), nil
}

func (h *groupHandler) patchMembers(r *http.Request, users []store.User, role, op string, names []string) error {
	switch op {
	case elimity.PatchOperationReplace:
		return h.setMembers(r, users, role, names)
	case elimity.PatchOperationAdd, elimity.PatchOperationRemove:
		for _, n := range names {
			if err := h.setRole(r, users, n, role, op == elimity.PatchOperationAdd); err != nil {
				return err
			}
		}
	}
	return nil
}

// Search implements elimity.ResourceSearcher: POST /Groups/.search.
func (h *groupHandler) Search(r *http.Request, p elimity.SearchParams) (elimity.Page, error) {
	return h.GetAll(r, elimity.ListRequestParams{Count: p.Count, StartIndex: p.StartIndex, FilterValidator: p.FilterValidator})
}
