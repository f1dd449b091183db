package jobspec

import "testing"

// path builds a fieldPath from keys (strings) and list indexes (ints).
func path(elems ...any) fieldPath {
	var p fieldPath
	for _, e := range elems {
		switch e := e.(type) {
		case string:
			p = p.key(e)
		case int:
			p = p.index(e)
		}
	}
	return p
}

func TestLineIndex(t *testing.T) {
	const doc = `# a comment
name: web   # trailing comment
"quoted key": 1
task:
  command: x
  resources:
    cpu: 1

    memory: 2Gi
  constraints:
  - rack in (r1)
  - zone != b
  args:
    - one
    -
      two
  env: {A: b}
  healthCheck:
    exec: ["a",
      "b"]
    interval: 5s
items:
  - name: first
    value: 1
  - name: second
    nested:
      - - deep: true
  - plain
'url: x': 'it''s'
block: |
  name: not a key
  - not an item
last: 1
`
	cases := []struct {
		path fieldPath
		want int
	}{
		{path("name"), 2},
		{path("quoted key"), 3},
		{path("task"), 4},
		{path("task", "command"), 5},
		{path("task", "resources", "cpu"), 7},
		{path("task", "resources", "memory"), 9},
		{path("task", "resources", "disk"), 6}, // missing: its parent
		{path("task", "constraints", 0), 11},
		{path("task", "constraints", 1), 12},
		{path("task", "constraints", 2), 10},
		{path("task", "args", 0), 14},
		{path("task", "args", 1), 15},
		{path("task", "env", "A"), 17}, // flow style: the enclosing key
		{path("task", "healthCheck", "exec", 1), 19},
		{path("task", "healthCheck", "interval"), 21},
		{path("items", 0, "name"), 23},
		{path("items", 0, "value"), 24},
		{path("items", 1, "name"), 25},
		{path("items", 1, "nested", 0, 0, "deep"), 27},
		{path("items", 2), 28},
		{path("url: x"), 29},
		{path("block"), 30},
		{path("last"), 33},
		{path("missing"), 0},
		{path(), 0},
	}
	x := indexLines([]byte(doc))
	for _, c := range cases {
		if got := x.line(c.path); got != c.want {
			t.Errorf("line(%s) = %d, want %d", c.path, got, c.want)
		}
	}
}

func TestLineIndexFlowAndJSON(t *testing.T) {
	for _, doc := range []string{`{"name": "x", "task": {"command": "y"}}`, "{\n  \"name\": \"x\"\n}\n", ""} {
		if got := indexLines([]byte(doc)).line(path("name")); got != 0 {
			t.Errorf("%q: line(name) = %d, want 0", doc, got)
		}
	}
}

func TestSecondDocumentLine(t *testing.T) {
	cases := []struct {
		doc  string
		want int
	}{
		{"name: a\n", 0},
		{"---\nname: a\n", 0},
		{"# c\n---\nname: a\n", 0},
		{"name: a\n---\nname: b\n", 2},
		{"name: a\n--- # next\n", 2},
		{"name: a\nblock: |\n  ---\n", 0},
	}
	for _, c := range cases {
		if got := secondDocumentLine([]byte(c.doc)); got != c.want {
			t.Errorf("secondDocumentLine(%q) = %d, want %d", c.doc, got, c.want)
		}
	}
}

func TestFieldPathString(t *testing.T) {
	cases := []struct {
		path fieldPath
		want string
	}{
		{path("task", "resources", "memory"), "task.resources.memory"},
		{path("task", "constraints", 2), "task.constraints[2]"},
		{path("task", "env", "MY VAR"), `task.env["MY VAR"]`},
		{path("task", "env", "1BAD"), "task.env.1BAD"},
		{path(), ""},
	}
	for _, c := range cases {
		if got := c.path.String(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}
