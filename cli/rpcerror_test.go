package cli

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// UNAVAILABLE from the transport means the cell server is away and gets
// the --server hint; UNAVAILABLE the server sent about a machine's agent
// (ErrorInfo AGENT_UNAVAILABLE) does not.
func TestRPCErrorHintsAtTheServerOnlyWhenItIsAway(t *testing.T) {
	agentAway, err := status.New(codes.Unavailable, "machine m1: no agent answers for it").WithDetails(
		&errdetails.ErrorInfo{Reason: "AGENT_UNAVAILABLE", Domain: "omegacell", Metadata: map[string]string{"machine": "m1"}})
	if err != nil {
		t.Fatal(err)
	}
	otherInfo, _ := status.New(codes.Unavailable, "busy").WithDetails(&errdetails.ErrorInfo{Reason: "OTHER", Domain: "omegacell"})
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"server away", status.Error(codes.Unavailable, "connection refused"),
			"job logs: Unavailable: connection refused (is the cell server running? point --server or CELL_ADDR at it)"},
		{"agent away", agentAway.Err(), "job logs: Unavailable: machine m1: no agent answers for it"},
		{"another reason", otherInfo.Err(), "job logs: Unavailable: busy (is the cell server running? point --server or CELL_ADDR at it)"},
		{"not a status", errors.New("boom"), "job logs: boom"},
	}
	for _, tt := range tests {
		if got := rpcError("job logs", tt.err).Error(); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	if !strings.Contains(rpcError("x", agentAway.Err()).Error(), "m1") {
		t.Error("the machine is not named")
	}
}
