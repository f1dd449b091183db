package sim

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/omegacell/omegacell/txn"
)

// RowError is a malformed row of a trace file: the file, the line, the
// column (1-based field number) and the column's name.
type RowError struct {
	File   string
	Line   int
	Column int
	Name   string
	Err    error
}

func (e *RowError) Error() string {
	if e.Column == 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s:%d: column %d (%s): %v", e.File, e.Line, e.Column, e.Name, e.Err)
}

func (e *RowError) Unwrap() error { return e.Err }

// csvFile reads one CSV trace file, plain or gzip-compressed (recognised
// by its magic bytes, not its name), row by row, naming the file, line and
// column of any malformed field.
type csvFile struct {
	name    string
	columns []string
	f       *os.File
	gz      *gzip.Reader
	r       *csv.Reader
	rec     []string
	line    int
}

func openCSV(path string, columns []string) (*csvFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	c := &csvFile{name: filepath.Base(path), columns: columns, f: f}
	br := bufio.NewReaderSize(f, 1<<16)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		if c.gz, err = gzip.NewReader(br); err != nil {
			f.Close()
			return nil, fmt.Errorf("trace %s: %w", c.name, err)
		}
		src = c.gz
	}
	c.r = csv.NewReader(src)
	c.r.FieldsPerRecord = -1
	c.r.ReuseRecord = true
	return c, nil
}

func (c *csvFile) Close() error {
	if c.gz != nil {
		c.gz.Close()
	}
	return c.f.Close()
}

// next reads the next row; io.EOF at the end. A row with the wrong number
// of fields is an error naming the line.
func (c *csvFile) next() error {
	rec, err := c.r.Read()
	if err != nil {
		if err == io.EOF {
			return io.EOF
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			// CSV syntax errors are located by character, not by field.
			return &RowError{File: c.name, Line: pe.Line, Err: fmt.Errorf("character %d: %w", pe.Column, pe.Err)}
		}
		return fmt.Errorf("trace %s: %w", c.name, err)
	}
	c.rec = rec
	c.line, _ = c.r.FieldPos(0)
	if len(rec) != len(c.columns) {
		return &RowError{File: c.name, Line: c.line, Err: fmt.Errorf("%d fields, want %d (%v)", len(rec), len(c.columns), c.columns)}
	}
	return nil
}

func (c *csvFile) errAt(col int, format string, args ...any) error {
	return &RowError{File: c.name, Line: c.line, Column: col + 1, Name: c.columns[col], Err: fmt.Errorf(format, args...)}
}

// str is field col as it is.
func (c *csvFile) str(col int) string { return c.rec[col] }

// int parses field col as an integer; an empty field is an error unless
// optional, when it is reported as absent.
func (c *csvFile) int(col int, optional bool) (v int64, present bool, err error) {
	s := c.rec[col]
	if s == "" {
		if optional {
			return 0, false, nil
		}
		return 0, false, c.errAt(col, "is empty")
	}
	v, perr := strconv.ParseInt(s, 10, 64)
	if perr != nil {
		return 0, false, c.errAt(col, "%q is not an integer", s)
	}
	return v, true, nil
}

// float parses field col as a finite number, optional as for int.
func (c *csvFile) float(col int, optional bool) (v float64, present bool, err error) {
	s := c.rec[col]
	if s == "" {
		if optional {
			return 0, false, nil
		}
		return 0, false, c.errAt(col, "is empty")
	}
	v, perr := strconv.ParseFloat(s, 64)
	if perr != nil || v != v || v > 1e300 || v < -1e300 {
		return 0, false, c.errAt(col, "%q is not a number", s)
	}
	return v, true, nil
}

// traceFiles expands paths into files: a directory stands for the files
// in it (sorted by name), so a trace split into parts reads in order.
func traceFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("trace: %w", err)
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("trace: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				out = append(out, filepath.Join(p, e.Name()))
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("trace: no files in %v", paths)
	}
	return out, nil
}

// Trace is a Source replaying machines and jobs read from a trace.
type Trace struct {
	name     string
	machines []*txn.Machine
	items    []Item // time-ordered; jobs and machine events
	pos      int
	// Skipped counts trace records the replay leaves out, by reason.
	Skipped map[string]int
}

// Name is the trace's name.
func (t *Trace) Name() string { return t.name }

// Machines implements Source.
func (t *Trace) Machines() []*txn.Machine { return t.machines }

// Next implements Source.
func (t *Trace) Next() (Item, bool) {
	if t.pos == len(t.items) {
		return Item{}, false
	}
	it := t.items[t.pos]
	t.pos++
	return it, true
}

// Jobs counts the trace's jobs (prefill included).
func (t *Trace) Jobs() int {
	n := 0
	for _, it := range t.items {
		if it.Job != nil {
			n++
		}
	}
	return n
}

// LastArrival is the time of the trace's last item (0 if it has none).
func (t *Trace) LastArrival() float64 {
	if len(t.items) == 0 {
		return 0
	}
	return t.items[len(t.items)-1].At
}

// sortItems orders items by time; at equal times machine events come
// first (a machine added at t can take a job submitted at t), then the
// order they were read in.
func sortItems(items []Item) {
	slices.SortStableFunc(items, func(a, b Item) int {
		switch {
		case a.At < b.At:
			return -1
		case a.At > b.At:
			return 1
		case a.Machine != nil && b.Machine == nil:
			return -1
		case a.Machine == nil && b.Machine != nil:
			return 1
		}
		return 0
	})
}
