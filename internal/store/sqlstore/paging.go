package sqlstore

import (
	"context"
	"strconv"

	"github.com/flowgate/flowgate/internal/store"
)

// Every list pages by keyset, never by offset: a cursor names the last row
// of a page, and the next page is the rows after it in the list's order.

// queryPage runs a list query that ends in "LIMIT ?", asking for one row
// more than limit: that row says whether another page exists, so the last
// page never hands out a cursor to an empty one. args are the query's
// other arguments; key gives the cursor key of a row.
func queryPage[T any](ctx context.Context, s *Store, query string, args []any, limit int,
	scan func(scanner) (T, error), key func(T) string) ([]T, string, error) {
	rows, err := s.read.QueryContext(ctx, query, append(args, limit+1)...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	out := make([]T, 0, min(limit, 64))
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	var next string
	if len(out) > limit {
		out = out[:limit]
		next = store.EncodeCursor(key(out[len(out)-1]))
	}
	return out, next, nil
}

// listPage pages a list ordered by one text key: first is the query for
// the first page, after the one for the rows after the cursor's key (its
// only other argument). Both end in "LIMIT ?" and are already rebound.
func listPage[T any](ctx context.Context, s *Store, p store.Page, first, after string,
	scan func(scanner) (T, error), key func(T) string) ([]T, string, error) {
	p = p.Normalize()
	query, args := first, []any(nil)
	if p.Cursor != "" {
		k, err := store.DecodeCursor(p.Cursor)
		if err != nil {
			return nil, "", err
		}
		query, args = after, []any{k}
	}
	return queryPage(ctx, s, query, args, p.Limit, scan, key)
}

// decodeIntCursor reads a cursor whose key is an integer.
func decodeIntCursor(c string) (int64, error) {
	k, err := store.DecodeCursor(c)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(k, 10, 64)
	if err != nil {
		return 0, store.ErrInvalidCursor
	}
	return n, nil
}
