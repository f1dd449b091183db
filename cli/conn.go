package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/omegacell/omegacell/proto/cellclient"
	"github.com/omegacell/omegacell/proto/credentials"
)

// DefaultAddress is where the commands look for the cell when neither
// --server nor $CELL_ADDR says otherwise; `cell server` listens there by
// default.
const DefaultAddress = "127.0.0.1:7070"

// AddressEnv names the environment variable that overrides DefaultAddress.
const AddressEnv = "CELL_ADDR"

// Dialer opens a client connection to the cell. The caller closes it.
type Dialer func(ctx context.Context) (*grpc.ClientConn, error)

// ServerFlag registers --server on fs (default $CELL_ADDR, then
// DefaultAddress) and the credential flags (CredentialFlags), and returns
// a Dialer that dials the flags' values when called, i.e. after the flags
// were parsed.
func ServerFlag(fs *pflag.FlagSet) Dialer {
	addr := fs.String("server", DefaultServerAddress(), "cell server gRPC address (env "+AddressEnv+")")
	creds := CredentialFlags(fs)
	return func(ctx context.Context) (*grpc.ClientConn, error) {
		if *addr == "" {
			return nil, errors.New("--server is empty (want host:port)")
		}
		c, err := creds()
		if err != nil {
			return nil, err
		}
		return Dial(ctx, *addr, c)
	}
}

// CredentialFlags registers --credentials and --insecure on fs and returns
// what they say once parsed: the bundle credentials.Find finds (the flag,
// $CELL_CREDENTIALS, ./cell-data/pki/admin), or no TLS at all with a
// warning.
func CredentialFlags(fs *pflag.FlagSet) func() (credentials.Client, error) {
	dir := fs.String("credentials", "", "credential bundle directory with ca.pem, cert.pem, key.pem (env "+credentials.Env+"; default ./"+credentials.DefaultDir+" when it exists)")
	insecure := fs.Bool("insecure", false, "connect without TLS or credentials (only to a cell started with --insecure)")
	return func() (credentials.Client, error) { return clientFrom(*dir, *insecure) }
}

func clientFrom(dir string, insecure bool) (credentials.Client, error) {
	if insecure {
		slog.Warn(credentials.InsecureWarning)
		return credentials.Client{Insecure: true}, nil
	}
	return credentials.Client{}.Resolve(dir)
}

// DefaultServerAddress is $CELL_ADDR, or DefaultAddress when it is unset.
func DefaultServerAddress() string {
	return cmp.Or(strings.TrimSpace(os.Getenv(AddressEnv)), DefaultAddress)
}

// Dial returns a gRPC client connection to addr (host:port) secured as c
// says. Connecting is lazy: an unreachable server shows up as
// codes.Unavailable on the first call, which rpcError explains. It is the
// one place the commands dial: every call may receive (and send) what the
// server may send (cellclient.MaxMessageBytes), not gRPC's 4 MiB default,
// so any answer of a legal cell (a snapshot chunk, a page, a job at its
// size bound) reaches the command.
func Dial(_ context.Context, addr string, c credentials.Client) (*grpc.ClientConn, error) {
	if addr == "" {
		return nil, errors.New("--server is empty (want host:port)")
	}
	conn, err := cellclient.Dial(addr, c,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cellclient.MaxMessageBytes), grpc.MaxCallSendMsgSize(cellclient.MaxMessageBytes)))
	if err != nil {
		return nil, fmt.Errorf("--server %q: %w", addr, err)
	}
	return conn, nil
}

// rpcError turns an error of a call into one line that says what was
// being done, the gRPC status code and the server's message:
//
//	job status: NotFound: job "web" not found
func rpcError(what string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", what, err)
	}
	msg := strings.Join(strings.Fields(st.Message()), " ")
	switch st.Code() {
	case codes.Unavailable:
		if agentUnavailable(st) {
			break // the server answered: a machine's agent is away
		}
		if strings.Contains(msg, "tls:") || strings.Contains(msg, "x509:") || strings.Contains(msg, "certificate") {
			msg += " (the TLS handshake failed: the credential may be revoked, expired or of another cell, or the server was started with --insecure; check --credentials)"
			break
		}
		msg += " (is the cell server running? point --server or " + AddressEnv + " at it)"
	case codes.DeadlineExceeded:
		msg += " (the cell server did not answer in time)"
	case codes.Unauthenticated:
		msg += " (" + credentials.HowToGet + ")"
	}
	return &callError{what: what, code: st.Code(), msg: msg}
}

// callError is a failed gRPC call, rendered on one line.
type callError struct {
	what string
	code codes.Code
	msg  string
}

func (e *callError) Error() string { return fmt.Sprintf("%s: %s: %s", e.what, e.code, e.msg) }

// GRPCStatus lets status.FromError and status.Code see the original code.
func (e *callError) GRPCStatus() *status.Status { return status.New(e.code, e.msg) }

// session is one command's use of the cell: its output format, a
// connection, and a context bounded by callTimeout. Close it when done.
type session struct {
	ctx    context.Context
	format outputFormat
	conn   *grpc.ClientConn
	cancel context.CancelFunc
}

// openSession checks the output format, then dials the cell.
func openSession(cmd *cobra.Command, dial Dialer, format func() (outputFormat, error)) (*session, error) {
	f, err := format()
	if err != nil {
		return nil, err
	}
	conn, err := dial(cmd.Context())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), callTimeout)
	return &session{ctx: ctx, format: f, conn: conn, cancel: cancel}, nil
}

func (s *session) Close() {
	s.cancel()
	_ = s.conn.Close()
}

// agentUnavailable: the cell server answered, and said a machine's agent
// is away (a google.rpc.ErrorInfo with reason AGENT_UNAVAILABLE); the hint
// about --server would mislead.
func agentUnavailable(st *status.Status) bool {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == "omegacell" && info.GetReason() == "AGENT_UNAVAILABLE" {
			return true
		}
	}
	return false
}
