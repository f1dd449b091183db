package layout

import (
	"errors"
	"fmt"
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/omegacell/omegacell/"

// allowed maps a folder of the module to the folders its packages may
// import (besides their own folder's packages). The first rows are
// DESIGN.md's table; the others are the packages added since, with the
// rule each follows.
var allowed = map[string][]string{
	// DESIGN.md.
	"txn":        {},
	"cellstate":  {"txn", "proto", "pbconv"},
	"schedulers": {"txn", "proto", "pbconv"},
	"agent":      {"proto"},
	"proto":      {},
	// bench/load also starts a cell in-process (cellserver) and a
	// simulated fleet (agent): it measures the whole product.
	"bench":    {"txn", "schedulers", "cellstate", "proto", "cellserver", "agent"},
	"cmd/cell": {"*"},
	// Added since: the one proto↔txn conversion; the job-spec parser and
	// the CLI (clients of the API); the server wiring; test helpers;
	// examples (SDK users).
	"pbconv":     {"txn", "proto"},
	"jobspec":    {"txn", "proto", "pbconv"},
	"cli":        {"txn", "proto", "pbconv", "jobspec"},
	"cellserver": {"cellstate", "proto", "txn", "pbconv", "pki", "webui", "replication"},
	"internal":   {"cellserver", "cellstate", "proto", "txn", "pki"},
	"examples":   {"schedulers", "txn", "proto"},
	// The cell's certificate authority (server side); clients read
	// bundles with proto/credentials.
	"pki": {"proto"},
	// The web view (issue 16): served by cellserver; it calls the API's
	// own handlers and reuses cellstate's authorization and redaction.
	// Its login tokens are part of the API's contract (proto/login), so
	// the CLI mints them without importing the view.
	"webui": {"cellstate", "proto"},
	// Replication (issue 15): the store's change log on JetStream; the
	// server wires it in cluster mode.
	"replication": {"cellstate", "proto"},
}

// testsMayAlsoImport: tests run against real parts, so any package's tests
// may start a store or a server, use the test helpers and read job specs.
var testsMayAlsoImport = []string{"cellstate", "cellserver", "internal", "jobspec", "txn", "pbconv", "proto", "pki"}

// testsOfAlsoImport: tests of a folder that need a whole running cell
// (schedulers and agents, as `cell dev` runs them) besides the store.
var testsOfAlsoImport = map[string][]string{
	// Browser tests drive a real cell: its schedulers place what the page
	// shows and a real agent runs the task whose logs the page follows.
	"webui": {"agent", "schedulers"},
}

// folderOf is the row of allowed that a package path (relative to the
// module) belongs to.
func folderOf(rel string) string {
	if rel == "cmd/cell" || strings.HasPrefix(rel, "cmd/cell/") {
		return "cmd/cell"
	}
	first, _, _ := strings.Cut(rel, "/")
	return first
}

// The packages are read in this process with go/build (not `go list` in a
// child), so the test cache sees every file the check depends on.
func TestImportsFollowTheLayout(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	packages := 0
	err = filepath.WalkDir(root, func(dir string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if name := d.Name(); dir != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		if dir != root {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return filepath.SkipDir // another module (tools/)
			}
		}
		p, err := build.ImportDir(dir, build.ImportComment)
		if err != nil {
			var none *build.NoGoError
			if errors.As(err, &none) {
				return nil
			}
			return fmt.Errorf("%s: %w", dir, err)
		}
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		packages++
		from := folderOf(pkg)
		rules, ok := allowed[from]
		if !ok {
			t.Errorf("%s: folder %s has no row in the layout; add one (and to DESIGN.md's table if it is a part)", pkg, from)
			return nil
		}
		check := func(imports []string, rules []string, what string) {
			for _, imp := range imports {
				rel, ours := strings.CutPrefix(imp, module)
				if !ours {
					continue
				}
				to := folderOf(rel)
				if to == from || slices.Contains(rules, "*") || slices.Contains(rules, to) {
					continue
				}
				t.Errorf("%s%s imports %s: %s may import only %v", pkg, what, rel, from, rules)
			}
		}
		check(p.Imports, rules, "")
		check(append(slices.Clone(p.TestImports), p.XTestImports...), append(append(slices.Clone(rules), testsMayAlsoImport...), testsOfAlsoImport[from]...), "'s tests")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if packages < 20 {
		t.Fatalf("found %d packages in the module; expected the whole tree", packages)
	}
}
