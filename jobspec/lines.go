package jobspec

import (
	"strconv"
	"strings"
)

// The YAML library behind sigs.k8s.io/yaml reports line numbers only for
// syntax errors; it keeps no positions for the values it decodes. To say on
// which line a bad field sits, lineIndex re-reads the source as block-style
// YAML (one "key:" or "- " per line, structure by indentation), which is how
// people write specs. It only ever runs on text the YAML parser accepted,
// and it is best effort: for flow style ({...}, [...]) and JSON it answers
// the line of the deepest enclosing block key it can find, or 0.

// lineIndex holds the block structure of each non-blank source line.
type lineIndex struct {
	lines []srcLine
}

type srcLine struct {
	num    int // 1-based line number in the source
	tokens []blockToken
}

type tokenKind uint8

const (
	tokSeq   tokenKind = iota // a "- " sequence entry marker
	tokKey                    // a "key:" mapping key
	tokValue                  // anything else: a scalar or a flow collection
)

// blockToken is one structural element at the start of a line; a line
// such as "  - name: web" holds a tokSeq at column 2 and a tokKey at 4.
type blockToken struct {
	col  int
	kind tokenKind
	key  string
}

// nodeRef points at a token: lines[line].tokens[tok].
type nodeRef struct{ line, tok int }

func indexLines(src []byte) *lineIndex {
	x := &lineIndex{}
	for i, s := range strings.Split(string(src), "\n") {
		s = strings.TrimRight(s, "\r")
		if isDocumentMarker(s) || strings.HasPrefix(s, "%") {
			continue
		}
		if toks := tokenizeLine(s); len(toks) > 0 {
			x.lines = append(x.lines, srcLine{num: i + 1, tokens: toks})
		}
	}
	return x
}

func isDocumentMarker(s string) bool {
	for _, m := range []string{"---", "..."} {
		if s == m || strings.HasPrefix(s, m+" ") || strings.HasPrefix(s, m+"\t") {
			return true
		}
	}
	return false
}

// tokenizeLine splits the block structure off the start of one line. A
// comment or blank line yields no tokens.
func tokenizeLine(s string) []blockToken {
	col := skipBlanks(s, 0)
	var toks []blockToken
	for col < len(s) && s[col] != '#' {
		rest := s[col:]
		if rest[0] == '-' && (len(rest) == 1 || rest[1] == ' ' || rest[1] == '\t') {
			toks = append(toks, blockToken{col: col, kind: tokSeq})
			col = skipBlanks(s, col+1)
			continue
		}
		if len(toks) == 0 || toks[len(toks)-1].kind == tokSeq {
			if key, n, ok := mappingKey(rest); ok {
				toks = append(toks, blockToken{col: col, kind: tokKey, key: key})
				col = skipBlanks(s, col+n)
				continue
			}
		}
		toks = append(toks, blockToken{col: col, kind: tokValue})
		break
	}
	return toks
}

func skipBlanks(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// mappingKey recognises `key:`, `"key":` and `'key':` at the start of s,
// returning the key and the bytes consumed through the colon.
func mappingKey(s string) (key string, n int, ok bool) {
	switch s[0] {
	case '"', '\'':
		end := closingQuote(s)
		if end < 0 {
			return "", 0, false
		}
		key = unquoteKey(s[:end+1])
		i := skipBlanks(s, end+1)
		if i < len(s) && s[i] == ':' && (i+1 == len(s) || s[i+1] == ' ' || s[i+1] == '\t') {
			return key, i + 1, true
		}
		return "", 0, false
	case '[', '{', '&', '*', '!', '|', '>', '%', '@', '`', '?', '#':
		return "", 0, false
	}
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '#' && i > 0 && (s[i-1] == ' ' || s[i-1] == '\t'):
			return "", 0, false
		case s[i] == ':' && (i+1 == len(s) || s[i+1] == ' ' || s[i+1] == '\t'):
			key = strings.TrimRight(s[:i], " \t")
			return key, i + 1, key != ""
		}
	}
	return "", 0, false
}

// closingQuote returns the index of the quote that closes the quoted
// scalar at the start of s, or -1.
func closingQuote(s string) int {
	q := s[0]
	for i := 1; i < len(s); i++ {
		switch {
		case q == '"' && s[i] == '\\':
			i++
		case s[i] == q && q == '\'' && i+1 < len(s) && s[i+1] == '\'':
			i++
		case s[i] == q:
			return i
		}
	}
	return -1
}

func unquoteKey(quoted string) string {
	if quoted[0] == '\'' {
		return strings.ReplaceAll(quoted[1:len(quoted)-1], "''", "'")
	}
	if k, err := strconv.Unquote(quoted); err == nil {
		return k
	}
	return quoted[1 : len(quoted)-1]
}

// line returns the source line of the value at p: the line of its key or
// of its "- " marker. When p leads into flow style or to a field that is
// not in the source, it returns the line of the deepest part of p found,
// and 0 when not even the first part was found.
func (x *lineIndex) line(p fieldPath) int {
	if len(x.lines) == 0 {
		return 0
	}
	node, ok := nodeRef{}, true
	best := 0
	for _, e := range p {
		if !ok {
			break
		}
		var child nodeRef
		var found bool
		if e.isIndex {
			child, found = x.item(node, e.index)
		} else {
			child, found = x.entry(node, e.key)
		}
		if !found {
			break
		}
		best = x.lines[child.line].num
		node, ok = x.valueOf(child)
	}
	return best
}

func (x *lineIndex) token(n nodeRef) blockToken { return x.lines[n.line].tokens[n.tok] }

// first returns the first token of line l.
func (x *lineIndex) first(l int) blockToken { return x.lines[l].tokens[0] }

// entry finds key in the block mapping whose first key is at n.
func (x *lineIndex) entry(n nodeRef, key string) (nodeRef, bool) {
	t := x.token(n)
	if t.kind != tokKey {
		return nodeRef{}, false
	}
	if t.key == key {
		return n, true
	}
	for l := n.line + 1; l < len(x.lines); l++ {
		f := x.first(l)
		switch {
		case f.col > t.col:
			continue // inside the value of an earlier key
		case f.col < t.col:
			return nodeRef{}, false
		case f.kind == tokKey:
			if f.key == key {
				return nodeRef{line: l}, true
			}
		case f.kind == tokSeq:
			continue // a sequence value written at the key's own indentation
		default:
			return nodeRef{}, false
		}
	}
	return nodeRef{}, false
}

// item finds entry i of the block sequence whose first "- " is at n.
func (x *lineIndex) item(n nodeRef, i int) (nodeRef, bool) {
	t := x.token(n)
	if t.kind != tokSeq || i < 0 {
		return nodeRef{}, false
	}
	if i == 0 {
		return n, true
	}
	seen := 0
	for l := n.line + 1; l < len(x.lines); l++ {
		f := x.first(l)
		switch {
		case f.col > t.col:
			continue
		case f.col < t.col || f.kind != tokSeq:
			return nodeRef{}, false
		}
		if seen++; seen == i {
			return nodeRef{line: l}, true
		}
	}
	return nodeRef{}, false
}

// valueOf returns where the value of a key or sequence entry starts: later
// on the same line, or on the next line when that is indented further (or,
// for a key, is a "- " at the key's own indentation).
func (x *lineIndex) valueOf(n nodeRef) (nodeRef, bool) {
	if n.tok+1 < len(x.lines[n.line].tokens) {
		return nodeRef{line: n.line, tok: n.tok + 1}, true
	}
	if n.line+1 >= len(x.lines) {
		return nodeRef{}, false
	}
	t, f := x.token(n), x.first(n.line+1)
	if f.col > t.col || (t.kind == tokKey && f.col == t.col && f.kind == tokSeq) {
		return nodeRef{line: n.line + 1}, true
	}
	return nodeRef{}, false
}

// secondDocumentLine returns the line of a "---" that starts a second
// YAML document, or 0. The YAML parser silently reads only the first
// document; a spec file must hold exactly one.
func secondDocumentLine(src []byte) int {
	content := false
	for i, s := range strings.Split(string(src), "\n") {
		s = strings.TrimRight(s, "\r")
		switch {
		case isDocumentMarker(s) && strings.HasPrefix(s, "---"):
			if content {
				return i + 1
			}
		case strings.HasPrefix(s, "%"):
		case len(tokenizeLine(s)) > 0:
			content = true
		}
	}
	return 0
}
