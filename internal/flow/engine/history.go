package engine

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/flowgate/flowgate/internal/store"
)

// HistoryRecord is one step record as an instance's history shows it: the
// instance's own, or one of a branch instance's (a branch of its parallel
// step, an item of its foreach step), which is part of the same run.
type HistoryRecord struct {
	store.StepRecord
	// Branch is the parallel branch's name the record belongs to; "" when
	// none.
	Branch string
	// Item is the foreach item's index; -1 when none.
	Item int
	// Fork is the parallel or foreach step the branch or item is of.
	Fork string
}

// History pages through an instance's step records in the order the steps
// started: its own and, when its parallel or foreach steps ran branches,
// theirs, each marked with its branch or item. The caller has checked that
// it may see the instance.
func (e *Engine) History(ctx context.Context, id string, p store.Page) ([]HistoryRecord, string, error) {
	branches, err := e.branchInstances(ctx, id)
	if err != nil {
		return nil, "", err
	}
	if len(branches) == 0 {
		recs, next, err := e.st.History(ctx, id, p)
		if err != nil {
			return nil, "", err
		}
		out := make([]HistoryRecord, len(recs))
		for i, r := range recs {
			out[i] = HistoryRecord{StepRecord: r, Item: -1}
		}
		return out, next, nil
	}
	// Records of several instances, merged by start: read whole and paged
	// by position. A run's records are bounded by limits.max_steps per
	// instance.
	p = p.Normalize()
	offset := 0
	if p.Cursor != "" {
		key, err := store.DecodeCursor(p.Cursor)
		if err != nil {
			return nil, "", err
		}
		pos, ok := strings.CutPrefix(key, "at:")
		if offset, err = strconv.Atoi(pos); !ok || err != nil || offset < 0 {
			return nil, "", store.ErrInvalidCursor
		}
	}
	all, err := e.allRecords(ctx, id, HistoryRecord{Item: -1})
	if err != nil {
		return nil, "", err
	}
	for _, b := range branches {
		mark := HistoryRecord{Item: -1}
		fork, name, _ := strings.Cut(b.Branch, "/")
		mark.Fork = fork
		if i, err := strconv.Atoi(name); err == nil && e.isForeach(ctx, b, fork) {
			mark.Item = i
		} else {
			mark.Branch = name
		}
		recs, err := e.allRecords(ctx, b.ID, mark)
		if err != nil {
			return nil, "", err
		}
		all = append(all, recs...)
	}
	slices.SortStableFunc(all, func(a, b HistoryRecord) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.InstanceID, b.InstanceID), cmp.Compare(a.Seq, b.Seq))
	})
	if offset >= len(all) {
		return nil, "", nil
	}
	end := min(offset+p.Limit, len(all))
	next := ""
	if end < len(all) {
		next = store.EncodeCursor("at:" + strconv.Itoa(end))
	}
	return all[offset:end], next, nil
}

// isForeach tells whether step fork of a branch instance's flow is a
// foreach (its branches are numbered items) rather than a parallel whose
// branch has a numeric name.
func (e *Engine) isForeach(ctx context.Context, b store.Instance, fork string) bool {
	def, err := e.Definition(ctx, b.Workflow, b.Version)
	if err != nil {
		return true
	}
	s, ok := def.Step(fork)
	return !ok || s.Foreach != nil
}

// branchInstances lists the branch instances of instance id and of its
// branch instances, at any depth.
func (e *Engine) branchInstances(ctx context.Context, id string) ([]store.Instance, error) {
	var out []store.Instance
	cursor := ""
	for {
		kids, next, err := e.st.ListInstances(ctx, store.InstanceFilter{Parent: id}, store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return nil, fmt.Errorf("branches of %s: %w", id, err)
		}
		for _, k := range kids {
			if k.Branch == "" {
				continue // a sub-flow's child has a history of its own
			}
			out = append(out, k)
			deeper, err := e.branchInstances(ctx, k.ID)
			if err != nil {
				return nil, err
			}
			out = append(out, deeper...)
		}
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

// allRecords reads every step record of instance id, marked as mark.
func (e *Engine) allRecords(ctx context.Context, id string, mark HistoryRecord) ([]HistoryRecord, error) {
	var out []HistoryRecord
	cursor := ""
	for {
		recs, next, err := e.st.History(ctx, id, store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", id, err)
		}
		for _, r := range recs {
			h := mark
			h.StepRecord = r
			out = append(out, h)
		}
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

// CurrentStep is one step an instance is at: its own, or one of a branch
// instance's while its parallel or foreach step runs.
type CurrentStep struct {
	Step string
	// Instance is the instance at the step: the one asked about or one of
	// its branch instances.
	Instance string
	// Branch and Item say which branch or item, as in HistoryRecord.
	Branch string
	Item   int
	Status string
}

// CurrentSteps lists the steps instance in is at: several while its
// parallel or foreach steps run branches. None once it has ended.
func (e *Engine) CurrentSteps(ctx context.Context, in store.Instance) ([]CurrentStep, error) {
	if in.Ended() || in.CurrentStep == "" {
		return nil, nil
	}
	out := []CurrentStep{{Step: in.CurrentStep, Instance: in.ID, Item: -1, Status: in.Status}}
	branches, err := e.branchInstances(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	for _, b := range branches {
		if b.Ended() || b.CurrentStep == "" {
			continue
		}
		cs := CurrentStep{Step: b.CurrentStep, Instance: b.ID, Item: -1, Status: b.Status}
		fork, name, _ := strings.Cut(b.Branch, "/")
		if i, err := strconv.Atoi(name); err == nil && e.isForeach(ctx, b, fork) {
			cs.Item = i
		} else {
			cs.Branch = name
		}
		out = append(out, cs)
	}
	return out, nil
}
