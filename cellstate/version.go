package cellstate

import (
	"context"

	"google.golang.org/grpc"

	"github.com/omegacell/omegacell/proto/cellclient"
)

// VersionHeader is the response header in which the server names its
// build (ServerOptions.Version) on every unary call; `cell version` reads
// it. A header, not a field: every client sees it without a new RPC.
const VersionHeader = cellclient.VersionHeader

// versionUnary sends the version header.
func (s *Server) versionUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	_ = grpc.SetHeader(ctx, s.versionMD)
	return handler(ctx, req)
}
