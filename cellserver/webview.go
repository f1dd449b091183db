package cellserver

import (
	"fmt"
	"net/http"

	"google.golang.org/grpc"

	"github.com/omegacell/omegacell/cellstate"
	"github.com/omegacell/omegacell/proto/cellclient"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/webui"
)

// webviewIdentity is the web view's own identity for its shared watch and
// the schedulers' figures: a read-only one (a scheduler's reads are all
// redacted; it commits nothing and never registers).
var webviewIdentity = identity.Identity{Role: identity.Scheduler, Name: "webview"}

// startWebView serves the web view (package webui) at / on the metrics
// port. It reads the cell through the API in process, as each browser's
// identity, and follows it with one watch over loopback gRPC.
func (s *Server) startWebView(mux *http.ServeMux, api *cellstate.Server, metrics *cellstate.Metrics) error {
	creds, err := s.Client(webviewIdentity)
	if err != nil {
		return fmt.Errorf("web view credential: %w", err)
	}
	dial, err := creds.DialOption(s.addr)
	if err != nil {
		return err
	}
	// The server's own receive limit: a revision larger than the gRPC
	// default (4 MiB) comes in fragments of up to that, and a smaller
	// limit broke the watch at every big revision, each time followed by
	// a snapshot of the whole cell.
	s.uiConn, err = grpc.NewClient(s.addr, dial, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cellclient.MaxMessageBytes)))
	if err != nil {
		return fmt.Errorf("web view: %w", err)
	}
	o := webui.Options{
		API: api, Conn: s.uiConn, Self: webviewIdentity, Log: s.log,
		Usage: s.liveness.EachUsage, CommitLatency: metrics.CommitLatencyTotals,
	}
	if s.pki != nil {
		o.Roots = s.pki.CA.Pool()
	}
	if s.revoked != nil {
		o.Revoked = s.revoked.IsRevoked
	}
	if s.ui, err = webui.New(o); err != nil {
		return err
	}
	mux.Handle("/", s.ui.Handler())
	return nil
}

// closeWebView stops the web view's watch and its connection.
func (s *Server) closeWebView() {
	if s.ui != nil {
		s.ui.Close()
	}
	if s.uiConn != nil {
		s.uiConn.Close()
	}
}

// WebURL is the web view's address ("" when the metrics port is off).
func (s *Server) WebURL() string {
	if s.metrics == "" {
		return ""
	}
	return "http://" + s.metrics + "/"
}
