package cellstate

import (
	"sort"
	"testing"

	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
)

// TestReflectionListsServices: server reflection is on, so `grpcurl
// -plaintext ADDR list` and `describe` work against a cell.
func TestReflectionListsServices(t *testing.T) {
	c := newTestCell(t, Options{})
	stream, err := reflectionpb.NewServerReflectionClient(c.conn).ServerReflectionInfo(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	want := []string{"cell.v1.AgentService", "cell.v1.JobService", "cell.v1.MachineService", "cell.v1.SchedulerService", "cell.v1.StateService"}
	for _, w := range want {
		i := sort.SearchStrings(names, w)
		if i == len(names) || names[i] != w {
			t.Fatalf("reflection lists %v, missing %s", names, w)
		}
	}
	// describe: the file defining a service can be fetched.
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "cell.v1.StateService"}}); err != nil {
		t.Fatal(err)
	}
	resp, err = stream.Recv()
	if err != nil || len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Fatalf("describe cell.v1.StateService: %v %v", resp, err)
	}
}
