package builtin

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Names lists the .yaml files in dir of fsys, without the extension.
func Names(fsys fs.FS, dir string) []string {
	entries, _ := fs.ReadDir(fsys, dir)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Read returns the built-in dir/NAME.yaml of fsys, or else the file at
// nameOrPath, with the name to show for it.
func Read(fsys fs.FS, dir, nameOrPath string) (data []byte, name string, err error) {
	if data, err := fs.ReadFile(fsys, dir+"/"+nameOrPath+".yaml"); err == nil {
		return data, nameOrPath, nil
	}
	data, err = os.ReadFile(nameOrPath)
	if err != nil {
		return nil, "", fmt.Errorf("workload %q is neither built in (%s) nor a readable file: %w",
			nameOrPath, strings.Join(Names(fsys, dir), ", "), err)
	}
	return data, filepath.Base(nameOrPath), nil
}
