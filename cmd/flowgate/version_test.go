package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A release build: the version set with -ldflags -X as the Makefile does,
// the commit and the modified flag recorded by the Go toolchain from this
// checkout (-buildvcs=true, since a GOFLAGS default may turn it off).
func TestVersionOfReleaseBuild(t *testing.T) {
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	commit := strings.TrimSpace(string(head))
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err != nil || !fi.IsDir() {
		// The go command looks for a .git directory; a `git worktree`
		// checkout has a .git file, and its builds carry no VCS data.
		t.Skip("a git worktree: the go command records VCS information only where .git is a directory")
	}
	bin := filepath.Join(t.TempDir(), "flowgate")
	build := exec.Command("go", "build", "-buildvcs=true", "-trimpath", "-ldflags",
		"-X github.com/flowgate/flowgate/internal/buildinfo.version=v9.8.7", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// Read after the build, so a file changed meanwhile cannot make the
	// binary look clean.
	status, err := exec.Command("git", "status", "--porcelain").Output()
	if err != nil {
		t.Fatal(err)
	}
	modified := len(status) > 0

	out, err := exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Version   string `json:"version"`
		Commit    string `json:"commit"`
		Modified  bool   `json:"modified"`
		GoVersion string `json:"go_version"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := struct {
		Version   string `json:"version"`
		Commit    string `json:"commit"`
		Modified  bool   `json:"modified"`
		GoVersion string `json:"go_version"`
	}{"v9.8.7", commit, modified, runtime.Version()}
	if info != want {
		t.Errorf("version --json = %+v, want %+v", info, want)
	}

	out, err = exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	line := "flowgate v9.8.7 commit " + commit[:12]
	if modified {
		line += " (modified)"
	}
	if got := string(out); got != line+" "+runtime.Version()+"\n" {
		t.Errorf("version = %q, want %q", got, line)
	}
}
