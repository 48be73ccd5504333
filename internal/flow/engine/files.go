package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/flowgate/flowgate/internal/flow"
)

// Deployed is one file's outcome in DeployPath.
type Deployed struct {
	File       string
	Definition *flow.Definition
	// Created is false when the file matched the latest version.
	Created bool
}

// DeployPath deploys a definition file, or every .yaml, .yml and .json file
// of a folder (not recursing), in name order. Every file is validated
// before any is stored, so a folder with one bad file deploys nothing and
// the error lists every problem of every file.
func (e *Engine) DeployPath(ctx context.Context, path, by string) ([]Deployed, error) {
	files, sources, _, err := CheckPath(path, e.serverKnown(ctx))
	if err != nil {
		return nil, err
	}
	out := make([]Deployed, 0, len(files))
	for i, f := range files {
		def, created, err := e.Deploy(ctx, sources[i], f, by)
		if err != nil {
			return out, err
		}
		out = append(out, Deployed{File: f, Definition: def, Created: created})
	}
	return out, nil
}

// CheckDeploy validates what DeployPath would deploy from path, against
// the OAuth servers this engine knows, and stores nothing.
func (e *Engine) CheckDeploy(ctx context.Context, path string) (files []string, defs []*flow.Definition, err error) {
	files, _, defs, err = CheckPath(path, e.serverKnown(ctx))
	return files, defs, err
}

// CheckPath reads and validates the definitions DeployPath would deploy
// from path, storing nothing: every problem of every file, a flow name
// defined twice, and OAuth servers that known does not know. It returns
// the files in name order with their sources and definitions.
func CheckPath(path string, known ServerKnown) (files []string, sources [][]byte, defs []*flow.Definition, err error) {
	files, err = definitionFiles(path)
	if err != nil {
		return nil, nil, nil, err
	}
	sources = make([][]byte, len(files))
	defs = make([]*flow.Definition, len(files))
	var problems []error
	names := map[string]string{}
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			problems = append(problems, fmt.Errorf("read flow %s: %w", f, err))
			continue
		}
		sources[i] = b
		def, err := parseChecked(b, f, known)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		defs[i] = def
		if other, ok := names[def.Name]; ok {
			problems = append(problems, fmt.Errorf("%s: flow %q is also defined in %s", f, def.Name, other))
		}
		names[def.Name] = f
	}
	if len(problems) > 0 {
		return nil, nil, nil, errors.Join(problems...)
	}
	return files, sources, defs, nil
}

func definitionFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("flows %s: %w", path, unwrapPathError(err))
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("flows %s: %w", path, unwrapPathError(err))
	}
	var files []string
	for _, de := range entries {
		ext := strings.ToLower(filepath.Ext(de.Name()))
		if de.Type().IsRegular() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
			files = append(files, filepath.Join(path, de.Name()))
		}
	}
	slices.Sort(files)
	return files, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
