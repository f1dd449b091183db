package jobspec

import (
	"strconv"
	"strings"
)

// fieldPath names a value in a spec document: mapping keys and list
// indexes from the root, e.g. task → resources → memory.
type fieldPath []pathElem

type pathElem struct {
	key     string
	index   int
	isIndex bool
}

// key returns the path of the mapping entry k below p (p is not changed).
func (p fieldPath) key(k string) fieldPath {
	return append(p[:len(p):len(p)], pathElem{key: k})
}

// index returns the path of list item i below p (p is not changed).
func (p fieldPath) index(i int) fieldPath {
	return append(p[:len(p):len(p)], pathElem{index: i, isIndex: true})
}

// String renders the path as a user reads it: task.constraints[2],
// task.env["MY VAR"] for keys that are not plain identifiers.
func (p fieldPath) String() string {
	var b strings.Builder
	for i, e := range p {
		switch {
		case e.isIndex:
			b.WriteString("[" + strconv.Itoa(e.index) + "]")
		case !isPlainKey(e.key):
			b.WriteString("[" + strconv.Quote(e.key) + "]")
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(e.key)
		}
	}
	return b.String()
}

func isPlainKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
