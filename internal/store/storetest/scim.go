package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/flowgate/flowgate/internal/store"
)

func runSCIMConformance(t *testing.T, newStore func(t *testing.T) store.Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"SCIMRoundTrip", testSCIMRoundTrip},
		{"SCIMConflictsAndMissing", testSCIMConflictsAndMissing},
		{"SCIMList", testSCIMList},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func testSCIMRoundTrip(t *testing.T, s store.Store) {
	r := store.SCIMResource{Kind: store.SCIMGroup, ID: "g-1", Name: "approver", ExternalID: "ext-1", CreatedAt: ts(1000), UpdatedAt: ts(1000)}
	if err := s.CreateSCIMResource(ctx(t), r); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSCIMResource(ctx(t), store.SCIMGroup, "g-1")
	if err != nil || got.Name != "approver" || got.ExternalID != "ext-1" || !got.CreatedAt.Equal(ts(1000).UTC().Truncate(1000)) {
		t.Fatalf("GetSCIMResource = %+v, %v", got, err)
	}
	// The same id under the other kind is another resource.
	if _, err := s.GetSCIMResource(ctx(t), store.SCIMUser, "g-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("other kind: %v", err)
	}
	r.Name, r.ExternalID, r.UpdatedAt = "approvers", "ext-2", ts(2000)
	if err := s.UpdateSCIMResource(ctx(t), r); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetSCIMResource(ctx(t), store.SCIMGroup, "g-1")
	if got.Name != "approvers" || got.ExternalID != "ext-2" || !got.CreatedAt.Equal(ts(1000).UTC().Truncate(1000)) || !got.UpdatedAt.After(got.CreatedAt) {
		t.Errorf("after update: %+v", got)
	}
	if err := s.DeleteSCIMResource(ctx(t), store.SCIMGroup, "g-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSCIMResource(ctx(t), store.SCIMGroup, "g-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
}

func testSCIMConflictsAndMissing(t *testing.T, s store.Store) {
	a := store.SCIMResource{Kind: store.SCIMGroup, ID: "a", Name: "one"}
	if err := s.CreateSCIMResource(ctx(t), a); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]store.SCIMResource{
		"same id":   {Kind: store.SCIMGroup, ID: "a", Name: "two"},
		"same name": {Kind: store.SCIMGroup, ID: "b", Name: "one"},
	} {
		if err := s.CreateSCIMResource(ctx(t), r); !errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: %v, want ErrConflict", name, err)
		}
	}
	if err := s.CreateSCIMResource(ctx(t), store.SCIMResource{Kind: store.SCIMUser, ID: "a", Name: "one"}); err != nil {
		t.Errorf("another kind may reuse id and name: %v", err)
	}
	if err := s.CreateSCIMResource(ctx(t), store.SCIMResource{Kind: store.SCIMGroup, ID: "b", Name: "two"}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateSCIMResource(ctx(t), store.SCIMResource{Kind: store.SCIMGroup, ID: "b", Name: "one"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("rename onto another's name: %v", err)
	}
	if err := s.UpdateSCIMResource(ctx(t), store.SCIMResource{Kind: store.SCIMGroup, ID: "zz", Name: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update of a missing one: %v", err)
	}
	if err := s.DeleteSCIMResource(ctx(t), store.SCIMGroup, "zz"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete of a missing one: %v", err)
	}
}

func testSCIMList(t *testing.T, s store.Store) {
	for i := range 7 {
		if err := s.CreateSCIMResource(ctx(t), store.SCIMResource{Kind: store.SCIMUser, ID: fmt.Sprintf("u%02d", i), Name: fmt.Sprintf("u%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateSCIMResource(ctx(t), store.SCIMResource{Kind: store.SCIMGroup, ID: "g", Name: "g"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	cursor := ""
	for {
		rs, next, err := s.ListSCIMResources(ctx(t), store.SCIMUser, store.Page{Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			got = append(got, r.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if fmt.Sprint(got) != "[u00 u01 u02 u03 u04 u05 u06]" {
		t.Errorf("users listed: %v", got)
	}
}
