package builtin

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestReadBuiltinOrFile(t *testing.T) {
	fsys := fstest.MapFS{
		"w/basic.yaml": {Data: []byte("a: 1")},
		"w/mixed.yaml": {Data: []byte("b: 2")},
		"w/notes.txt":  {Data: []byte("x")},
	}
	if got := Names(fsys, "w"); !slices.Equal(got, []string{"basic", "mixed"}) {
		t.Fatalf("Names = %v", got)
	}
	data, name, err := Read(fsys, "w", "mixed")
	if err != nil || string(data) != "b: 2" || name != "mixed" {
		t.Fatalf("built in: %q %q %v", data, name, err)
	}
	path := filepath.Join(t.TempDir(), "mine.yaml")
	os.WriteFile(path, []byte("c: 3"), 0o644)
	data, name, err = Read(fsys, "w", path)
	if err != nil || string(data) != "c: 3" || name != "mine.yaml" {
		t.Fatalf("file: %q %q %v", data, name, err)
	}
	if _, _, err = Read(fsys, "w", "nope"); err == nil || !strings.Contains(err.Error(), "basic, mixed") {
		t.Fatalf("unknown: %v, want the built-in names listed", err)
	}
}
