package jobspec

import (
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// TestUpdateDocExample parses doc.go's update section in a service.
func TestUpdateDocExample(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(src), "// A service or a system job also takes (update_test.go parses it):\n//\n")
	if !ok {
		t.Fatal("doc.go lost its update example")
	}
	doc := "name: web\nkind: service\ncount: 4\ntask: {command: x, resources: {cpu: 1}}\n"
	for _, line := range strings.Split(rest, "\n") {
		body, ok := strings.CutPrefix(line, "//\t")
		if !ok {
			break
		}
		doc += body + "\n"
	}
	spec, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	want := &cellv1.UpdateStrategy{MaxSurge: &cellv1.IntOrPercent{Value: 25, Percent: true}, MaxUnavailable: &cellv1.IntOrPercent{Value: 1},
		MinHealthyTimeMs: 10_000, HealthyDeadlineMs: 300_000, AutoRevert: true}
	if !proto.Equal(spec.Update, want) {
		t.Fatalf("update = %v, want %v", spec.Update, want)
	}
	assertRoundTrip(t, spec)
}

// TestSystemUpdate: a system job takes an update strategy without surge.
func TestSystemUpdate(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want *cellv1.UpdateStrategy
	}{
		{"update: {maxUnavailable: 2, autoRevert: true}", &cellv1.UpdateStrategy{MaxUnavailable: &cellv1.IntOrPercent{Value: 2}, AutoRevert: true}},
		{"update: {maxSurge: 0, maxUnavailable: 20%}", &cellv1.UpdateStrategy{MaxSurge: &cellv1.IntOrPercent{}, MaxUnavailable: &cellv1.IntOrPercent{Value: 20, Percent: true}}},
	} {
		spec, err := Parse([]byte("name: d\nkind: system\ntask: {command: x, resources: {cpu: 1}}\n" + tc.doc))
		if err != nil {
			t.Fatalf("%s: %v", tc.doc, err)
		}
		if !proto.Equal(spec.Update, tc.want) {
			t.Errorf("%s: update = %v, want %v", tc.doc, spec.Update, tc.want)
		}
		assertRoundTrip(t, spec)
	}
}

func TestUpdateErrors(t *testing.T) {
	base := "name: web\nkind: service\ntask: {command: x, resources: {cpu: 1}}\n"
	for _, tc := range []struct{ doc, want string }{
		{base + "update: {maxSurge: 120%}", `update.maxSurge: "120%": a percentage is 0%..100%`},
		{base + "update: {maxUnavailable: lots}", `update.maxUnavailable: "lots": want a number of replicas`},
		{base + "update: {minHealthyTime: 1m, healthyDeadline: 30s}", "update.healthyDeadline: 30s must be longer than minHealthyTime"},
		{base + "update: {healthyDeadline: 48h}", "update.healthyDeadline"},
		{"name: b\ntask: {command: x, resources: {cpu: 1}}\nupdate: {autoRevert: true}", "update: only a service or a system job rolls out"},
		{"name: d\nkind: system\ntask: {command: x, resources: {cpu: 1}}\nupdate: {maxSurge: 1}", "update.maxSurge: \"1\": a system job runs one task per machine, it cannot surge"},
		{"name: d\nkind: system\ntask: {command: x, resources: {cpu: 1}}\nupdate: {maxSurge: 10%}", "update.maxSurge: \"10%\": a system job"},
		{base + "task2: 1", "task2: unknown field"},
	} {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.doc, err, tc.want)
		}
	}
}
