// Package proto holds the public API of omegacell as protobuf (cell/v1) and
// its generated Go code, which is committed.
//
// Regenerate (offline: buf and both plugins are pinned in tools/go.mod):
//
//	go generate ./proto/...
package proto

//go:generate sh -c "cd .. && go tool -modfile=tools/go.mod buf lint && go tool -modfile=tools/go.mod buf generate"
