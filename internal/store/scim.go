package store

import (
	"context"
	"time"
)

// SCIM resource kinds.
const (
	SCIMUser  = "user"
	SCIMGroup = "group"
)

// SCIMResource records that user provisioning (docs/api.md) manages a user
// or a group: the user or role itself lives where it always does (users,
// their roles); this is the link, with the identity provider's id.
type SCIMResource struct {
	// Kind is SCIMUser or SCIMGroup.
	Kind string
	// ID is the username of a user, a generated id for a group.
	ID string
	// Name is the username, or the role a group stands for; unique per
	// kind.
	Name       string
	ExternalID string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// SCIMResources stores the links of provisioned users and groups.
type SCIMResources interface {
	// CreateSCIMResource adds a link; ErrConflict when the kind's id or
	// name is taken. Zero times are now.
	CreateSCIMResource(ctx context.Context, r SCIMResource) error
	// UpdateSCIMResource replaces Name and ExternalID (and UpdatedAt: zero
	// is now); ErrNotFound when there is none, ErrConflict when the name
	// is another's.
	UpdateSCIMResource(ctx context.Context, r SCIMResource) error
	// GetSCIMResource reads a link; ErrNotFound when there is none.
	GetSCIMResource(ctx context.Context, kind, id string) (SCIMResource, error)
	// DeleteSCIMResource removes a link; ErrNotFound when there is none.
	DeleteSCIMResource(ctx context.Context, kind, id string) error
	// ListSCIMResources pages through the links of a kind by id.
	ListSCIMResources(ctx context.Context, kind string, p Page) (rs []SCIMResource, nextCursor string, err error)
}
