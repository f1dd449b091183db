package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// outputFormat is what -o selects: a table for people, or the API
// response as JSON or YAML for programs.
type outputFormat string

const (
	formatTable outputFormat = "table"
	formatJSON  outputFormat = "json"
	formatYAML  outputFormat = "yaml"
)

// addOutputFlag registers -o/--output on cmd and its subcommands and
// returns a function that reads and checks it.
func addOutputFlag(cmd *cobra.Command) func() (outputFormat, error) {
	return outputFlagOn(cmd, cmd.PersistentFlags())
}

// outputFlagOn adds -o to flags, which belong to cmd.
func outputFlagOn(cmd *cobra.Command, flags *pflag.FlagSet) func() (outputFormat, error) {
	s := flags.StringP("output", "o", string(formatTable), "output format: table, wide (a table with more columns), json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(
		[]string{string(formatTable), "wide", string(formatJSON), string(formatYAML)}, cobra.ShellCompDirectiveNoFileComp))
	return func() (outputFormat, error) {
		switch f := outputFormat(strings.ToLower(*s)); f {
		case formatTable, formatJSON, formatYAML:
			return f, nil
		case "wide": // a table; commands with more columns check wideOutput
			return formatTable, nil
		}
		return "", fmt.Errorf("-o %q: want table, wide, json or yaml", *s)
	}
}

// writeProto prints an API message as JSON (protojson: the API's canonical
// JSON, camelCase names, 64-bit integers as strings, enums by name) or as
// the YAML form of that JSON. protojson randomises its whitespace between
// builds to keep people from depending on it; the output is re-indented so
// that it is stable.
func writeProto(w io.Writer, f outputFormat, m proto.Message) error {
	compact, err := protojson.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding the response: %w", err)
	}
	var out []byte
	switch f {
	case formatJSON:
		var buf bytes.Buffer
		if err := json.Indent(&buf, compact, "", "  "); err != nil {
			return fmt.Errorf("encoding the response: %w", err)
		}
		buf.WriteByte('\n')
		out = buf.Bytes()
	case formatYAML:
		if out, err = yaml.JSONToYAML(compact); err != nil {
			return fmt.Errorf("encoding the response: %w", err)
		}
	default:
		return fmt.Errorf("writeProto: format %q is not json or yaml", f)
	}
	_, err = w.Write(out)
	return err
}

// newTable returns a tabwriter for aligned columns; call Flush at the end.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// row writes one tab-separated table row.
func row(w io.Writer, cells ...string) {
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

// formatTime renders Unix nanoseconds in UTC, or "-" for unset.
func formatTime(ns int64) string {
	if ns == 0 {
		return "-"
	}
	return time.Unix(0, ns).UTC().Format("2006-01-02 15:04:05Z")
}

// enumName turns JOB_STATE_RUNNING into "running".
func enumName(full, prefix string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(full, prefix)), "_", "-")
}

func jobStateName(s cellv1.JobState) string   { return enumName(s.String(), "JOB_STATE_") }
func taskStateName(s cellv1.TaskState) string { return enumName(s.String(), "TASK_STATE_") }
func jobKindName(k cellv1.JobKind) string     { return enumName(k.String(), "JOB_KIND_") }
func machineStateName(s cellv1.MachineState) string {
	return enumName(s.String(), "MACHINE_STATE_")
}

// formatLabels renders labels as sorted k=v pairs.
func formatLabels(labels map[string]string) string {
	if len(labels) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}

// oneLine squeezes a free-text message into one table cell.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}
