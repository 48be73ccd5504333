// Package buildinfo says which build of Flowgate is running: the version,
// the commit, whether the tree had uncommitted changes, and the Go version.
// `flowgate version` prints it and /metrics exports it as
// flowgate_build_info.
package buildinfo

import (
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Release builds set these with
//
//	-ldflags "-X github.com/flowgate/flowgate/internal/buildinfo.version=v1.2.3
//	          -X github.com/flowgate/flowgate/internal/buildinfo.commit=…"
//
// (see the Makefile). The linker can only set package-level string
// variables, so these two are the exception to keeping no package state;
// nothing writes them at run time.
var (
	version string
	commit  string
)

// Info describes one build.
type Info struct {
	// Version is the release version (v1.2.3), the module version when
	// built with `go install …@version`, or "devel".
	Version string `json:"version"`
	// Commit is the full VCS revision, or "" when the build had no VCS
	// information (go run, a source archive).
	Commit string `json:"commit"`
	// Modified is true when the tree had uncommitted changes.
	Modified bool `json:"modified"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"go_version"`
	// Time is the commit time, RFC 3339, when known.
	Time string `json:"commit_time,omitempty"`
}

// Read returns what the linker flags and the Go toolchain recorded.
func Read() Info {
	return read(version, commit)
}

func read(ldVersion, ldCommit string) Info {
	info := Info{Version: "devel", GoVersion: "unknown"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		info.GoVersion = bi.GoVersion
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			info.Version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Commit = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			case "vcs.time":
				info.Time = s.Value
			}
		}
	}
	if ldVersion != "" {
		info.Version = ldVersion
	}
	if ldCommit != "" {
		// A release script may mark a dirty tree itself.
		c, dirty := strings.CutSuffix(ldCommit, "-dirty")
		info.Commit, info.Modified = c, info.Modified || dirty
	}
	return info
}

// ShortCommit is the first 12 characters of the commit, "unknown" when
// there is none.
func (i Info) ShortCommit() string {
	if i.Commit == "" {
		return "unknown"
	}
	return i.Commit[:min(12, len(i.Commit))]
}

// String is the one line `flowgate version` prints.
func (i Info) String() string {
	s := "flowgate " + i.Version + " commit " + i.ShortCommit()
	if i.Modified {
		s += " (modified)"
	}
	return s + " " + i.GoVersion
}

// Collector exports the build as the gauge flowgate_build_info, always 1,
// with the build in its labels, the Prometheus convention for joining a
// version onto other series.
func (i Info) Collector() prometheus.Collector {
	modified := "false"
	if i.Modified {
		modified = "true"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "flowgate_build_info",
		Help: "The running build: always 1, with version, commit, modified and Go version as labels.",
		ConstLabels: prometheus.Labels{
			"version": i.Version, "commit": i.ShortCommit(), "modified": modified, "goversion": i.GoVersion,
		},
	})
	g.Set(1)
	return g
}
