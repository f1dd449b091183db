package jobspec

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// checkShape compares a decoded document (maps, lists, strings,
// json.Numbers, bools, nils) with the Go type it will be decoded into, and
// reports every mismatch with its path: unknown fields (matched
// case-sensitively, unlike encoding/json), a string where a number belongs,
// a whole number out of range. Only a document that passes is handed to
// the strict JSON decoder, so every type error a user can make is reported
// here, with a field path and a line.
func checkShape(v any, t reflect.Type, p fieldPath, report func(fieldPath, string)) {
	if v == nil {
		return // null: the field is absent
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[Scalar]() {
		switch v.(type) {
		case string, json.Number:
		default:
			report(p, "want a string or a number, got "+describe(v))
		}
		return
	}
	switch t.Kind() {
	case reflect.String:
		if _, ok := v.(string); !ok {
			report(p, "want a string, got "+describe(v)+quoteHint(v))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			report(p, "want true or false, got "+describe(v))
		}
	case reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			report(p, "want a whole number, got "+describe(v))
			return
		}
		if _, err := strconv.ParseInt(n.String(), 10, 64); err != nil {
			report(p, "want a whole number, got "+describe(v))
		}
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			report(p, "want a list, got "+describe(v))
			return
		}
		for i, item := range list {
			checkShape(item, t.Elem(), p.index(i), report)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			report(p, "want a mapping, got "+describe(v))
			return
		}
		for _, k := range sortedKeys(m) {
			checkShape(m[k], t.Elem(), p.key(k), report)
		}
	case reflect.Struct:
		checkStruct(v, t, p, report)
	default:
		panic(fmt.Sprintf("jobspec: checkShape does not handle %v", t))
	}
}

func checkStruct(v any, t reflect.Type, p fieldPath, report func(fieldPath, string)) {
	m, ok := v.(map[string]any)
	if !ok {
		report(p, "want a mapping of fields, got "+describe(v))
		return
	}
	fields := map[string]reflect.Type{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		fields[name] = f.Type
		names = append(names, name)
	}
	for _, k := range sortedKeys(m) {
		ft, known := fields[k]
		if !known {
			report(p.key(k), "unknown field"+suggest(k, names))
			continue
		}
		checkShape(m[k], ft, p.key(k), report)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// describe names a decoded value for an error message.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		if len(v) > 40 {
			v = v[:37] + "..."
		}
		return "string " + strconv.Quote(v)
	case json.Number:
		return "number " + v.String()
	case bool:
		return strconv.FormatBool(v)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

// quoteHint explains YAML's typing of unquoted scalars when a string was
// expected: `PORT: 8080` is a number, `ANSWER: no` a boolean.
func quoteHint(v any) string {
	switch v := v.(type) {
	case json.Number:
		return fmt.Sprintf(" (quote it: \"%s\")", v)
	case bool:
		return " (YAML reads unquoted yes/no/on/off/true/false as booleans; quote the value)"
	}
	return ""
}

// suggest proposes the known field closest to an unknown one, for typos
// and wrong capitalisation: "retrylimit" → retryLimit.
func suggest(unknown string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if strings.EqualFold(k, unknown) {
			return fmt.Sprintf(" (did you mean %q?)", k)
		}
		if d := editDistance(strings.ToLower(k), strings.ToLower(unknown)); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return fmt.Sprintf(" (known fields: %s)", strings.Join(known, ", "))
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
