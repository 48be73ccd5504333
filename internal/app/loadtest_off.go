//go:build !loadtest

package app

import (
	"github.com/flowgate/flowgate/internal/resource"
	"github.com/flowgate/flowgate/internal/server"
)

// registerLoadTestRoutes does nothing outside -tags loadtest builds.
func registerLoadTestRoutes(*server.Server, *resource.Validator) {}
