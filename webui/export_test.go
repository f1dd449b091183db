package webui

import (
	"context"
	"errors"
	"io"
	"reflect"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// ViewVersusProtoSnapshot reads the cell with a Snapshot decoded by gRPC
// into messages (the proto path, refSnapshot) and compares u's copy with
// it: the snapshot's revision, the copy's, whether their rows and job
// counts are the same, and the number of tasks in the snapshot.
func ViewVersusProtoSnapshot(ctx context.Context, u *UI, conn grpc.ClientConnInterface) (rev, viewRev uint64, same bool, tasks int, err error) {
	stream, err := cellv1.NewStateServiceClient(conn).Snapshot(ctx, &cellv1.SnapshotRequest{})
	if err != nil {
		return 0, 0, false, 0, err
	}
	var chunks [][]byte
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, false, 0, err
		}
		b, err := proto.Marshal(r)
		if err != nil {
			return 0, 0, false, 0, err
		}
		chunks = append(chunks, b)
		if r.Last {
			break
		}
	}
	ref, refC := testHub()
	if _, err := refSnapshot(ref, chunks); err != nil {
		return 0, 0, false, 0, err
	}
	want := state(ref, refC)
	// The view's copy: the same fields but the client's dirty rows and
	// the placements (the view's page and history differ).
	got := state(u.hub, newClient(refC.id))
	got.Full, got.Dirty, got.Placed, want.Placed = want.Full, want.Dirty, 0, 0
	for _, ts := range want.Tasks {
		tasks += len(ts)
	}
	return want.Rev, got.Rev, reflect.DeepEqual(got, want), tasks, nil
}
