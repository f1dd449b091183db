package jobspec

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/omegacell/omegacell/pbconv"
	"github.com/omegacell/omegacell/pbconv/apicheck"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/txn"
)

// addSpecSeeds seeds a fuzz target with every spec under testdata.
func addSpecSeeds(f *testing.F) {
	for _, dir := range []string{"good", "bad"} {
		for _, pattern := range []string{"*.yaml", "*.json"} {
			files, _ := filepath.Glob(filepath.Join("testdata", dir, pattern))
			for _, file := range files {
				data, err := os.ReadFile(file)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(data)
			}
		}
	}
}

// FuzzParse feeds arbitrary documents to Parse: it must never panic, an
// error must be a non-empty Errors list with messages and plausible
// lines, and an accepted spec must be valid and survive Marshal.
func FuzzParse(f *testing.F) {
	addSpecSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := Parse(data)
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %T is not a non-empty Errors list: %v", err, err)
			}
			lines := bytes.Count(data, []byte("\n")) + 1
			for _, e := range errs {
				if e.Msg == "" || e.Line < 0 || e.Line > lines {
					t.Fatalf("bad error %+v for a %d-line document", e, lines)
				}
				// The store's validator runs last; only the byte budget is
				// its alone, every other bound has a friendlier check first.
				if strings.HasPrefix(e.Msg, "the store would refuse") && !strings.Contains(e.Msg, "encodes to") {
					t.Fatalf("a bound without its own check in the parser: %s", e.Msg)
				}
				if len(e.Msg) > 4*limits.MaxQuoted+400 {
					t.Fatalf("error message of %d bytes: values must be quoted short", len(e.Msg))
				}
			}
			return
		}
		if spec.GetName() == "" || spec.GetCount() < 1 || spec.GetCount() > MaxCount || spec.GetTask().GetCommand() == "" {
			t.Fatalf("accepted an invalid spec: %v", spec)
		}
		if err := txn.ValidateRequest(pbconv.Resources(spec.GetTask().GetResources())); err != nil {
			t.Fatalf("accepted a request the store refuses: %v", err)
		}
		for _, c := range pbconv.Constraints(spec.GetTask().GetConstraints()) {
			if err := c.Validate(); err != nil {
				t.Fatalf("accepted a constraint the store refuses: %v", err)
			}
		}
		if err := apicheck.JobSpec(spec); err != nil {
			t.Fatalf("accepted a spec the store refuses: %v", err)
		}
		assertRoundTrip(t, spec)
	})
}

// FuzzLineIndex looks up arbitrary paths in arbitrary text: no panics, and
// a line within the document.
func FuzzLineIndex(f *testing.F) {
	f.Add([]byte("name: a\ntask:\n  args:\n  - x\n"), "task.args.0")
	f.Add([]byte("- a: 1\n  b:\n    - - c: 2\n"), "0.b.0.0.c")
	f.Add([]byte("'k''': \"v\\\"\"\n"), "k'")
	f.Fuzz(func(t *testing.T, data []byte, dotted string) {
		var p fieldPath
		for _, part := range strings.Split(dotted, ".") {
			if i, err := strconv.Atoi(part); err == nil {
				p = p.index(i)
			} else {
				p = p.key(part)
			}
		}
		got := indexLines(data).line(p)
		if lines := bytes.Count(data, []byte("\n")) + 1; got < 0 || got > lines {
			t.Fatalf("line %d outside a %d-line document", got, lines)
		}
		secondDocumentLine(data)
	})
}
