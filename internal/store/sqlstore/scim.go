package sqlstore

import (
	"context"
	"fmt"

	"github.com/flowgate/flowgate/internal/store"
)

const scimCols = `kind, id, name, external_id, created_at, updated_at`

func scanSCIM(sc scanner) (store.SCIMResource, error) {
	var r store.SCIMResource
	var created, updated int64
	if err := sc.Scan(&r.Kind, &r.ID, &r.Name, &r.ExternalID, &created, &updated); err != nil {
		return r, err
	}
	r.CreatedAt, r.UpdatedAt = fromMicros(created), fromMicros(updated)
	return r, nil
}

// CreateSCIMResource implements store.SCIMResources.
func (s *Store) CreateSCIMResource(ctx context.Context, r store.SCIMResource) error {
	t := now()
	_, err := s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO scim_resources (`+scimCols+`) VALUES (?, ?, ?, ?, ?, ?)`),
		r.Kind, r.ID, r.Name, r.ExternalID, micros(nowOr(r.CreatedAt, t)), micros(nowOr(r.UpdatedAt, t)))
	if err != nil {
		return fmt.Errorf("create SCIM %s %q: %w", r.Kind, r.ID, s.conflict(err))
	}
	return nil
}

// UpdateSCIMResource implements store.SCIMResources.
func (s *Store) UpdateSCIMResource(ctx context.Context, r store.SCIMResource) error {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`UPDATE scim_resources SET name = ?, external_id = ?, updated_at = ?
		WHERE kind = ? AND id = ?`), r.Name, r.ExternalID, micros(nowOr(r.UpdatedAt, now())), r.Kind, r.ID)
	if err != nil {
		return fmt.Errorf("update SCIM %s %q: %w", r.Kind, r.ID, s.conflict(err))
	}
	return affectedOne(res, "update SCIM "+r.Kind, r.ID)
}

// GetSCIMResource implements store.SCIMResources.
func (s *Store) GetSCIMResource(ctx context.Context, kind, id string) (store.SCIMResource, error) {
	r, err := scanSCIM(s.read.QueryRowContext(ctx, s.q.rebind(`SELECT `+scimCols+` FROM scim_resources WHERE kind = ? AND id = ?`), kind, id))
	if err != nil {
		return r, fmt.Errorf("get SCIM %s %q: %w", kind, id, notFound(err))
	}
	return r, nil
}

// DeleteSCIMResource implements store.SCIMResources.
func (s *Store) DeleteSCIMResource(ctx context.Context, kind, id string) error {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM scim_resources WHERE kind = ? AND id = ?`), kind, id)
	if err != nil {
		return fmt.Errorf("delete SCIM %s %q: %w", kind, id, err)
	}
	return affectedOne(res, "delete SCIM "+kind, id)
}

// ListSCIMResources implements store.SCIMResources.
func (s *Store) ListSCIMResources(ctx context.Context, kind string, p store.Page) ([]store.SCIMResource, string, error) {
	p = p.Normalize()
	query, args := `SELECT `+scimCols+` FROM scim_resources WHERE kind = ? ORDER BY id LIMIT ?`, []any{kind}
	if p.Cursor != "" {
		k, err := store.DecodeCursor(p.Cursor)
		if err != nil {
			return nil, "", err
		}
		query, args = `SELECT `+scimCols+` FROM scim_resources WHERE kind = ? AND id > ? ORDER BY id LIMIT ?`, []any{kind, k}
	}
	return queryPage(ctx, s, s.q.rebind(query), args, p.Limit, scanSCIM, func(r store.SCIMResource) string { return r.ID })
}
