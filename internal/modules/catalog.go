// Package modules is the operator's catalog of approved Terraform modules:
// which modules and versions the gateway may run, where each version's
// source is, the SHA-256 that source must have, and the inputs each version
// takes — read from the module itself (its variable blocks), so the catalog
// cannot disagree with the code it approves.
package modules

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// CatalogFile is the catalog's file name in a catalog directory.
const CatalogFile = "catalog.json"

// File is the catalog as the operator writes it.
type File struct {
	Modules []FileModule `json:"modules"`
}

// FileModule is one approved module.
type FileModule struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// StepTimeout bounds each step of a run of this module (a Go duration
	// such as "5m"; at most the module_run kind's step timeout, which it
	// defaults to): a module that should take seconds cannot hold a worker
	// for the kind's ten minutes.
	StepTimeout string        `json:"step_timeout,omitempty"`
	Versions    []FileVersion `json:"versions"`
}

// FileVersion is one approved version: its source directory (relative to
// the catalog file) and the SHA-256 (DirHash) it must have.
type FileVersion struct {
	Version string `json:"version"`
	Source  string `json:"source"`
	SHA256  string `json:"sha256"`
}

// Catalog is the loaded, verified catalog.
type Catalog struct {
	modules map[string]*Module
}

// Module is an approved module with its versions.
type Module struct {
	Name        string
	Description string
	// StepTimeout is the catalog's bound on one step of a run (zero: the kind's).
	StepTimeout time.Duration
	Versions    map[string]*Version
}

// Version is one approved version of a module.
type Version struct {
	Module, Version string
	// Dir is the source directory; SHA256 what it must hash to when run.
	Dir, SHA256 string
	Inputs      []Input
}

// Load reads and verifies the catalog at path (a catalog.json, or the
// directory holding one): every version's source must hash to its
// recorded SHA-256, and its variables must parse.
func Load(path string) (*Catalog, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, CatalogFile)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("module catalog: %w", err)
	}
	var f File
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("module catalog %s: %w", path, err)
	}
	c := &Catalog{modules: map[string]*Module{}}
	base := filepath.Dir(path)
	for _, fm := range f.Modules {
		if fm.Name == "" || len(fm.Versions) == 0 {
			return nil, fmt.Errorf("module catalog %s: every module needs a name and at least one version", path)
		}
		if _, dup := c.modules[fm.Name]; dup {
			return nil, fmt.Errorf("module catalog %s: module %s is listed twice", path, fm.Name)
		}
		m := &Module{Name: fm.Name, Description: fm.Description, Versions: map[string]*Version{}}
		if fm.StepTimeout != "" {
			d, err := time.ParseDuration(fm.StepTimeout)
			if err != nil || d <= 0 || d > MaxStepTimeout {
				return nil, fmt.Errorf("module catalog %s: module %s: step_timeout %q is not a duration from 1s to %s", path, fm.Name, fm.StepTimeout, MaxStepTimeout)
			}
			m.StepTimeout = d
		}
		for _, fv := range fm.Versions {
			dir := filepath.Join(base, filepath.FromSlash(fv.Source))
			v := &Version{Module: fm.Name, Version: fv.Version, Dir: dir, SHA256: fv.SHA256}
			if err := v.Verify(); err != nil {
				return nil, err
			}
			if v.Inputs, err = ReadInputs(dir); err != nil {
				return nil, fmt.Errorf("module %s %s: %w", fm.Name, fv.Version, err)
			}
			m.Versions[fv.Version] = v
		}
		c.modules[fm.Name] = m
	}
	return c, nil
}

// MaxStepTimeout is the longest step a catalog may give a module: the
// module_run kind's own step timeout (its sub-tokens' TTL).
var MaxStepTimeout = func() time.Duration {
	k, _ := api.KindByName(api.KindModuleRun)
	return k.Settings.StepTimeout
}()

// StepTimeout is the catalog's bound on one step of a run of module name
// (zero when the catalog sets none).
func (c *Catalog) StepTimeout(name string) time.Duration {
	if m, ok := c.modules[name]; ok {
		return m.StepTimeout
	}
	return 0
}

// Version returns an approved version, or an error saying what is approved.
func (c *Catalog) Version(name, version string) (*Version, error) {
	m, ok := c.modules[name]
	if !ok {
		return nil, fmt.Errorf("module %s is not in the operator's catalog (approved: %s)", name, strings.Join(c.Names(), ", "))
	}
	v, ok := m.Versions[version]
	if !ok {
		return nil, fmt.Errorf("module %s has no approved version %q (approved: %s)", name, version, strings.Join(m.versionList(), ", "))
	}
	return v, nil
}

// Names lists the catalog's modules, sorted.
func (c *Catalog) Names() []string {
	out := make([]string, 0, len(c.modules))
	for n := range c.modules {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (m *Module) versionList() []string {
	out := make([]string, 0, len(m.Versions))
	for v := range m.Versions {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// Verify checks the source still hashes to the approved SHA-256: a module
// changed on disk after approval is refused, not run.
func (v *Version) Verify() error {
	got, err := DirHash(v.Dir)
	if err != nil {
		return fmt.Errorf("module %s %s: %w", v.Module, v.Version, err)
	}
	if got != v.SHA256 {
		return fmt.Errorf("module %s %s: source %s has SHA-256 %s, but the catalog approved %s; re-approve it (update the catalog) or restore the source",
			v.Module, v.Version, v.Dir, got, v.SHA256)
	}
	return nil
}

// DirHash is the SHA-256 of a module directory: over every regular file's
// slash path and content, in path order; hidden files and directories
// (.terraform, lock files of a local run) are not part of a module.
func DirHash(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != dir {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		} else if !d.IsDir() {
			return fmt.Errorf("%s is neither a file nor a directory; a module holds only files", p)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return "", fmt.Errorf("%s holds no files", dir)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		fh := sha256.New()
		_, err = io.Copy(fh, f)
		f.Close()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%x\n", filepath.ToSlash(rel), fh.Sum(nil))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
