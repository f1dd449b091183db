package cellclient

import (
	"errors"
	"slices"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestAddresses(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"a:1", []string{"a:1"}},
		{"a:1,b:2, c:3 ", []string{"a:1", "b:2", "c:3"}},
		{" , a:1,,", []string{"a:1"}},
		{"", nil},
	} {
		if got := Addresses(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Addresses(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func notLeaderErr(leader string) error {
	st := status.New(codes.Unavailable, "follower")
	info := &errdetails.ErrorInfo{Reason: ReasonNotLeader, Domain: "omegacell"}
	if leader != "" {
		info.Metadata = map[string]string{"leader": leader}
	}
	st, _ = st.WithDetails(info)
	return st.Err()
}

func TestNotLeader(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		leader string
		is     bool
	}{
		{"names the leader", notLeaderErr("b:2"), "b:2", true},
		{"election in progress", notLeaderErr(""), "", true},
		{"plain unavailable", status.Error(codes.Unavailable, "down"), "", false},
		{"other code", status.Error(codes.NotFound, "x"), "", false},
		{"not a status", errors.New("x"), "", false},
	} {
		leader, is := notLeader(tc.err)
		if leader != tc.leader || is != tc.is {
			t.Errorf("%s: notLeader = %q, %v; want %q, %v", tc.name, leader, is, tc.leader, tc.is)
		}
	}
}

// TestMoveOn: a hint among the addresses is followed; without one the
// connection moves to the next server, once per failure of the current.
func TestMoveOn(t *testing.T) {
	f := &follower{addrs: []string{"a:1", "b:2", "c:3"}}
	f.leader.Store(&f.addrs[0])
	f.moveOn("c:3", "a:1")
	if got := *f.leader.Load(); got != "c:3" {
		t.Fatalf("after hint: %s", got)
	}
	f.moveOn("x:9", "c:3") // unknown hint: next server
	first := *f.leader.Load()
	if first == "c:3" {
		t.Fatal("did not move on from a failed server")
	}
	f.moveOn("", "c:3") // a stale failure of a server no longer current
	if got := *f.leader.Load(); got != first {
		t.Fatalf("moved again on a stale failure: %s", got)
	}
}
