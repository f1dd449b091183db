package jobspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/omegacell/omegacell/pbconv/apicheck"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"sigs.k8s.io/yaml"
)

// MaxSpecBytes bounds the size of a spec document.
const MaxSpecBytes = 1 << 20

// Parse reads one job spec, YAML or JSON, and returns it validated with
// its defaults filled in, ready for JobService.SubmitJob. On failure the
// error is an [Errors] listing every problem found (up to the first YAML
// syntax error, after which nothing more can be said).
func Parse(data []byte) (*cellv1.JobSpec, error) {
	spec, errs := parse(data)
	if len(errs) > 0 {
		errs.sortByLine()
		return nil, errs
	}
	return spec, nil
}

// ParseFile reads and parses the spec in the named file. Its errors carry
// the file name: "job.yaml:7: task.resources.memory: ...".
func ParseFile(path string) (*cellv1.JobSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	spec, err := Parse(data)
	var errs Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			e.File = path
		}
	}
	return spec, err
}

func parse(data []byte) (*cellv1.JobSpec, Errors) {
	if len(data) > MaxSpecBytes {
		return nil, Errors{{Msg: fmt.Sprintf("the spec is %d bytes; at most %d are allowed", len(data), MaxSpecBytes)}}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, Errors{{Msg: "the spec is empty (want at least name, task.command and task.resources)"}}
	}
	if line := secondDocumentLine(data); line > 0 {
		return nil, Errors{{Line: line, Msg: "a second YAML document starts here; a spec file holds exactly one job"}}
	}

	// YAMLToJSONStrict refuses duplicate keys and reports syntax errors with
	// their line. JSON input is YAML too and goes the same way.
	raw, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, yamlErrors(err, data)
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, Errors{{Msg: "reading the converted document: " + err.Error()}}
	}

	lines := indexLines(data)
	var errs Errors
	report := func(p fieldPath, msg string) {
		errs = append(errs, &FieldError{Line: lines.line(p), Path: p.String(), Msg: msg})
	}
	if doc == nil {
		return nil, Errors{{Msg: "the spec is empty (want at least name, task.command and task.resources)"}}
	}
	checkShape(doc, reflect.TypeFor[Spec](), nil, report)
	if len(errs) > 0 {
		return nil, errs
	}

	// The document has the right shape, so the strict decoder (the same
	// one yaml.UnmarshalStrict uses) cannot fail; it is kept strict so that
	// a field added to Spec without a shape rule cannot slip through.
	var spec Spec
	strict := json.NewDecoder(bytes.NewReader(raw))
	strict.DisallowUnknownFields()
	if err := strict.Decode(&spec); err != nil {
		return nil, Errors{{Msg: "decoding: " + err.Error()}}
	}

	c := &converter{report: report}
	out := c.jobSpec(&spec)
	if len(errs) > 0 {
		return nil, errs
	}
	// The store's own validator last: what passes here is never refused
	// for a bound. It finds what the friendlier checks above do not look
	// at, such as the job's encoded size.
	if err := apicheck.JobSpec(out); err != nil {
		return nil, Errors{{Msg: "the store would refuse the job: " + err.Error()}}
	}
	return out, nil
}

var (
	yamlLineRE      = regexp.MustCompile(`(?s)^line ([0-9]+): (.*)$`)
	yamlDuplicateRE = regexp.MustCompile(`^key (".*") already set in map$`)
)

// yamlErrors turns the YAML library's error text into FieldErrors with
// lines: "yaml: line 3: mapping values are not allowed in this context",
// "yaml: unmarshal errors:\n  line 2: key \"name\" already set in map".
// A line indented with a tab gets a hint, as YAML forbids tabs there.
func yamlErrors(err error, data []byte) Errors {
	lines := strings.Split(string(data), "\n")
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	parts := []string{msg}
	if rest, ok := strings.CutPrefix(msg, "unmarshal errors:\n"); ok {
		parts = strings.Split(rest, "\n")
	}
	var errs Errors
	for _, part := range parts {
		e := &FieldError{Msg: strings.TrimSpace(part)}
		if m := yamlLineRE.FindStringSubmatch(e.Msg); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Line = min(e.Line, len(lines)) // the parser may name the line after the end
			e.Msg = m[2]
		}
		if m := yamlDuplicateRE.FindStringSubmatch(e.Msg); m != nil {
			e.Msg = "duplicate key " + m[1]
		}
		if e.Line > 0 && e.Line <= len(lines) && strings.HasPrefix(strings.TrimLeft(lines[e.Line-1], " "), "\t") {
			e.Msg += " (YAML does not allow tabs for indentation; use spaces)"
		}
		e.Msg = "YAML: " + e.Msg
		errs = append(errs, e)
	}
	return errs
}
