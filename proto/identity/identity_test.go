package identity

import (
	"context"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTripThroughURIs(t *testing.T) {
	cases := []struct {
		role    Role
		name    string
		tenants []string
		want    string
	}{
		{Admin, "", nil, "admin"},
		{Scheduler, "batch", nil, "scheduler/batch"},
		{Agent, "node-1.rack_2", nil, "agent/node-1.rack_2"},
		{User, "alice", []string{"ml", "infra", "ml"}, "user/alice"},
	}
	for _, c := range cases {
		id, err := New(c.role, c.name, c.tenants...)
		if err != nil {
			t.Fatalf("%s: %v", c.want, err)
		}
		if id.String() != c.want {
			t.Errorf("String = %q, want %q", id.String(), c.want)
		}
		got, err := Parse(id.URIs("cell-1"))
		if err != nil {
			t.Fatalf("%s: parse: %v", c.want, err)
		}
		if !reflect.DeepEqual(got, id) {
			t.Errorf("round trip %+v → %+v", id, got)
		}
	}
	u, _ := New(User, "alice", "ml", "infra")
	if !u.InTenant("ml") || !u.InTenant("infra") || u.InTenant("web") {
		t.Errorf("InTenant wrong for %+v", u)
	}
}

func TestSpeaksFor(t *testing.T) {
	agent, _ := New(Agent, "node-1")
	fleet, err := NewFleet("sim")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := Parse(fleet.URIs("c")); !reflect.DeepEqual(got, fleet) {
		t.Fatalf("fleet round trip: %+v", got)
	}
	sched, _ := New(Scheduler, "node-1")
	cases := []struct {
		id      Identity
		machine string
		want    bool
	}{
		{agent, "node-1", true},
		{agent, "node-10", false},
		{agent, "node", false},
		{fleet, "sim-0001", true},
		{fleet, "sim-", false},
		{fleet, "sim", false},
		{fleet, "sim-01a", false},
		{fleet, "simx-0001", false},
		{sched, "node-1", false},
	}
	for _, c := range cases {
		if got := c.id.SpeaksFor(c.machine); got != c.want {
			t.Errorf("%v (fleet %v) SpeaksFor(%q) = %v, want %v", c.id, c.id.Fleet, c.machine, got, c.want)
		}
	}
}

func TestRefusals(t *testing.T) {
	cases := []struct {
		name string
		uris []string
		want string
	}{
		{"none", []string{"spiffe://x/y"}, "no omegacell identity"},
		{"two", []string{"omegacell://c/admin", "omegacell://c/scheduler/a"}, "more than one"},
		{"bad role", []string{"omegacell://c/root/x"}, "unknown role"},
		{"bad name", []string{"omegacell://c/scheduler/Bad_Name"}, "DNS label"},
		{"deep", []string{"omegacell://c/scheduler/a/b"}, "malformed"},
		{"tenant on scheduler", []string{"omegacell://c/scheduler/a", "omegacell://c/tenant/t"}, "only users"},
		{"admin with name", []string{"omegacell://c/admin/x"}, "admin has no name"},
		{"fleet scheduler", []string{"omegacell://c/scheduler/a", "omegacell://c/fleet"}, "only agents may be fleets"},
		{"long name clipped", []string{"omegacell://c/user/" + strings.Repeat("A", 5000)}, "…"},
	}
	for _, c := range cases {
		var us []*url.URL
		for _, s := range c.uris {
			u, err := url.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			us = append(us, u)
		}
		_, err := Parse(us)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to say %q", c.name, err, c.want)
		}
		if err != nil && len(err.Error()) > 300 {
			t.Errorf("%s: error of %d bytes is not bounded", c.name, len(err.Error()))
		}
	}
}

func TestContext(t *testing.T) {
	if _, ok := FromContext(context.Background()); ok {
		t.Fatal("identity in an empty context")
	}
	id, _ := New(Scheduler, "gpu")
	got, ok := FromContext(NewContext(context.Background(), id))
	if !ok || got.String() != "scheduler/gpu" {
		t.Fatalf("got %v %v", got, ok)
	}
	if _, err := FromPeer(context.Background()); err == nil {
		t.Fatal("FromPeer without a peer succeeded")
	}
}
