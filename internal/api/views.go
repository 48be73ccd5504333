package api

import "github.com/flowgate/flowgate/internal/store"

// InstanceView is an instance as GET /api/v1/instances/{id} shows it, for
// the command line's --json output: one shape, whichever way it is read.
func InstanceView(in store.Instance) any { return toInstanceJSON(in) }

// HistoryView is a step record as GET /api/v1/instances/{id}/history
// shows it.
func HistoryView(s store.StepRecord) any { return toHistoryJSON(s) }
