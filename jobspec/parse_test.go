package jobspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// specFiles lists testdata/DIR/*.yaml and *.json.
func specFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"*.yaml", "*.json"} {
		m, err := filepath.Glob(filepath.Join("testdata", dir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	return files
}

func goldenPath(spec, ext string) string {
	return strings.TrimSuffix(spec, filepath.Ext(spec)) + ext
}

// checkGolden compares got with the golden file, or rewrites it with -update.
func checkGolden(t *testing.T, path string, got []byte) []byte {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return got
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	return want
}

// TestParseBadSpecs parses every spec under testdata/bad and compares the
// full error text with its .err golden file.
func TestParseBadSpecs(t *testing.T) {
	files := specFiles(t, "bad")
	if len(files) < 20 {
		t.Fatalf("only %d bad specs under testdata/bad; the table must cover at least 20", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			spec, err := Parse(data)
			if err == nil {
				t.Fatalf("Parse accepted a bad spec: %v", spec)
			}
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %T is not a non-empty Errors list: %v", err, err)
			}
			for _, e := range errs {
				if e.Msg == "" {
					t.Errorf("error without a message: %+v", e)
				}
			}
			got := []byte(err.Error() + "\n")
			if want := checkGolden(t, goldenPath(file, ".err"), got); !bytes.Equal(got, want) {
				t.Errorf("errors differ\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestParseGoodSpecs parses every spec under testdata/good, compares the
// JobSpec with its .json golden file (protojson), and checks that Marshal
// round-trips it.
func TestParseGoodSpecs(t *testing.T) {
	files := specFiles(t, "good")
	if len(files) == 0 {
		t.Fatal("no specs under testdata/good")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			got, err := ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			golden := checkGolden(t, goldenPath(file, ".golden"), protoJSON(t, got))
			want := &cellv1.JobSpec{}
			if err := protojson.Unmarshal(golden, want); err != nil {
				t.Fatalf("golden file: %v", err)
			}
			if !proto.Equal(got, want) {
				t.Errorf("spec differs from the golden file\ngot:\n%s\nwant:\n%s", protoJSON(t, got), golden)
			}
			assertRoundTrip(t, got)
		})
	}
}

// protoJSON renders m as indented protojson with stable whitespace.
func protoJSON(t *testing.T, m proto.Message) []byte {
	t.Helper()
	compact, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, compact, "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func assertRoundTrip(t *testing.T, spec *cellv1.JobSpec) {
	t.Helper()
	doc, err := Marshal(spec)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	again, err := Parse(doc)
	if err != nil {
		t.Fatalf("Parse(Marshal(spec)): %v\ndocument:\n%s", err, doc)
	}
	if !proto.Equal(spec, again) {
		t.Fatalf("round trip changed the spec\nbefore: %v\nafter:  %v\ndocument:\n%s", spec, again, doc)
	}
}

// TestParseFileNamesTheFile checks that ParseFile puts the file name in
// front of each error, compiler style.
func TestParseFileNamesTheFile(t *testing.T) {
	file := filepath.Join("testdata", "bad", "memory-unknown-unit.yaml")
	_, err := ParseFile(file)
	want := file + `:6: task.resources.memory: "12Qi": unknown unit "Qi" (want one of k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei)`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	if _, err := ParseFile(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: got %v, want os.ErrNotExist", err)
	}
}

// TestDocExample parses the complete example in doc.go, so the
// documentation cannot drift from the parser.
func TestDocExample(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(src), "// A complete spec, every field set:\n//\n")
	if !ok {
		t.Fatal("doc.go lost its example")
	}
	var example strings.Builder
	for _, line := range strings.Split(rest, "\n") {
		body, ok := strings.CutPrefix(line, "//\t")
		if !ok {
			break
		}
		example.WriteString(body + "\n")
	}
	spec, err := Parse([]byte(example.String()))
	if err != nil {
		t.Fatalf("doc.go example: %v\n%s", err, example.String())
	}
	if spec.GetTask().GetHealthCheck() == nil || spec.GetTask().GetDurationMs() != 300000 || len(spec.GetTask().GetConstraints()) != 7 {
		t.Fatalf("doc.go example lost fields: %v", spec)
	}
	assertRoundTrip(t, spec)
}

// TestDefaults pins the documented defaults.
func TestDefaults(t *testing.T) {
	cases := []struct {
		name, spec    string
		scheduler     string
		kind          cellv1.JobKind
		priority      int32
		count, retry  uint32
		gpuConstraint bool
	}{
		{"plain", "name: a\ntask: {command: x, resources: {cpu: 1}}", "batch", cellv1.JobKind_JOB_KIND_BATCH, 100, 1, 3, false},
		{"service scheduler", "name: a\nscheduler: service\ntask: {command: x, resources: {cpu: 1}}", "service", cellv1.JobKind_JOB_KIND_SERVICE, 200, 1, 3, false},
		{"service kind", "name: a\nkind: service\ntask: {command: x, resources: {cpu: 1}}", "service", cellv1.JobKind_JOB_KIND_SERVICE, 200, 1, 3, false},
		{"gpus", "name: a\ntask: {command: x, resources: {gpu: 1, gpuModel: A100}}", "gpu", cellv1.JobKind_JOB_KIND_BATCH, 100, 1, 3, true},
		{"custom scheduler service", "name: a\nscheduler: mine\nkind: service\ntask: {command: x, resources: {cpu: 1}}", "mine", cellv1.JobKind_JOB_KIND_SERVICE, 200, 1, 3, false},
		{"explicit", "name: a\nscheduler: gpu\npriority: 7\ncount: 9\nretryLimit: 0\ntask: {command: x, resources: {cpu: 1}}", "gpu", cellv1.JobKind_JOB_KIND_BATCH, 7, 9, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse([]byte(c.spec))
			if err != nil {
				t.Fatal(err)
			}
			if s.Scheduler != c.scheduler || s.Kind != c.kind || s.Priority != c.priority || s.Count != c.count || s.RetryLimit != c.retry {
				t.Fatalf("got scheduler=%s kind=%v priority=%d count=%d retry=%d", s.Scheduler, s.Kind, s.Priority, s.Count, s.RetryLimit)
			}
			hasGPU := len(s.Task.Constraints) == 1 && s.Task.Constraints[0].Key == GPUModelLabel
			if hasGPU != c.gpuConstraint {
				t.Fatalf("constraints %v", s.Task.Constraints)
			}
		})
	}
}

// TestErrorsAreCapped checks that a file with very many errors reports the
// first ones and a count of the rest.
func TestErrorsAreCapped(t *testing.T) {
	var doc strings.Builder
	doc.WriteString("name: a\ntask:\n  command: x\n  resources: {cpu: 1}\n  env:\n")
	for i := range 30 {
		doc.WriteString("    " + strings.Repeat("9", i+1) + "X: y\n")
	}
	_, err := Parse([]byte(doc.String()))
	if err == nil {
		t.Fatal("accepted invalid env names")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxReported+1 || lines[maxReported] != "... and 10 more errors" {
		t.Fatalf("got %d lines, last %q", len(lines), lines[len(lines)-1])
	}
}

// BenchmarkParse measures parsing the GPU gang example (a typical spec).
func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "good", "gpu-gang.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseErrors measures a spec with seven errors, which also runs
// the line locator for each.
func BenchmarkParseErrors(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "bad", "many-errors.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err == nil {
			b.Fatal("accepted a bad spec")
		}
	}
}
