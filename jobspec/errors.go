package jobspec

import (
	"fmt"
	"sort"
	"strings"
)

// FieldError is one thing wrong with a spec: where (file, line, field path)
// and what.
type FieldError struct {
	// File is the spec's file name; set by [ParseFile], empty for [Parse].
	File string
	// Line is the 1-based line of the field in the source, 0 when unknown
	// (flow-style YAML, JSON, or a field that is missing altogether and
	// whose parent could not be found either).
	Line int
	// Path names the field as written in the spec: "task.resources.memory",
	// "task.constraints[2]". Empty for errors about the document as a whole
	// (YAML syntax).
	Path string
	// Msg says what is wrong, quoting the offending value.
	Msg string
}

// Error renders "FILE:LINE: PATH: MSG", leaving out the parts that are
// unknown; without a file the position reads "line LINE".
func (e *FieldError) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// maxReported bounds how many errors one parse reports; a badly broken
// file would otherwise bury the first, most useful ones.
const maxReported = 20

// Errors is every problem found in one spec, ordered by line. Parse and
// ParseFile return it (never empty) as their error.
type Errors []*FieldError

// Error renders one error per line.
func (es Errors) Error() string {
	lines := make([]string, 0, len(es)+1)
	for i, e := range es {
		if i == maxReported {
			lines = append(lines, fmt.Sprintf("... and %d more errors", len(es)-maxReported))
			break
		}
		lines = append(lines, e.Error())
	}
	return strings.Join(lines, "\n")
}

// sortByLine orders errors by source line, keeping the order in which they
// were found for equal lines (and for errors without a line, which go last).
func (es Errors) sortByLine() {
	sort.SliceStable(es, func(i, j int) bool {
		li, lj := es[i].Line, es[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
}
