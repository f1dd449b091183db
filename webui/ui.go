package webui

import (
	"context"
	"crypto/x509"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"math/big"
	"net/http"
	"sync"

	"google.golang.org/grpc"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
)

//go:embed static
var static embed.FS

// API is the part of the cell's gRPC API the web view calls in process,
// with the browser's identity in the context (identity.NewContext): every
// read and action is authorized, shaped and redacted by the API's own
// handlers (cellstate.Server implements it).
type API interface {
	GetJob(context.Context, *cellv1.GetJobRequest) (*cellv1.GetJobResponse, error)
	StopJob(context.Context, *cellv1.StopJobRequest) (*cellv1.StopJobResponse, error)
	GetTaskLogs(context.Context, *cellv1.GetTaskLogsRequest) (*cellv1.GetTaskLogsResponse, error)
	GetMachine(context.Context, *cellv1.GetMachineRequest) (*cellv1.GetMachineResponse, error)
	DrainMachine(context.Context, *cellv1.DrainMachineRequest) (*cellv1.DrainMachineResponse, error)
	ListSchedulers(context.Context, *cellv1.ListSchedulersRequest) (*cellv1.ListSchedulersResponse, error)
	ListTenants(context.Context, *cellv1.ListTenantsRequest) (*cellv1.ListTenantsResponse, error)
}

// Options are what the web view runs with.
type Options struct {
	API API
	// Conn reaches the cell's StateService for the one shared Snapshot
	// and Watch, as Self.
	Conn grpc.ClientConnInterface
	// Self is the identity of the view's own reads (the watch, the
	// schedulers' figures): a read-only one.
	Self identity.Identity
	// Roots is the cell's CA, which login tokens must chain to; nil: the
	// cell is insecure and every browser is admin, as every gRPC caller.
	Roots *x509.CertPool
	// Revoked says whether a credential is revoked (nil: none is).
	Revoked func(serial *big.Int) bool
	// Usage calls its argument with every machine's latest usage (nil:
	// none is shown).
	Usage func(func(machine string, u *cellv1.Usage))
	// CommitLatency is the store's commit latency sum (s) and count.
	CommitLatency func() (float64, uint64)
	Log           *slog.Logger
}

// UI is a running web view; Close stops its goroutines.
type UI struct {
	opts     Options
	hub      *hub
	sessions *sessions
	mux      *http.ServeMux
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// New starts the web view's watch and sampling.
func New(o Options) (*UI, error) {
	if o.API == nil || o.Conn == nil {
		return nil, errors.New("webui: API and Conn are required")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	u := &UI{opts: o, hub: newHub(o.Conn, o.Log), sessions: newSessions(o.Roots, o.Revoked)}
	ctx, cancel := context.WithCancel(context.Background())
	u.cancel = cancel
	u.wg.Add(2)
	go func() { defer u.wg.Done(); u.hub.follow(ctx) }()
	go func() { defer u.wg.Done(); u.sample(ctx) }()
	u.routes()
	return u, nil
}

// Close stops the watch and the sampling (open event streams end with
// the HTTP server).
func (u *UI) Close() {
	u.cancel()
	u.wg.Wait()
}

// Handler serves the web view (mount it at /).
func (u *UI) Handler() http.Handler { return u.mux }

// Snapshots is how many times the view has read the whole cell: once at
// start, again only when its watch broke (a restart of the cell, its
// compaction, a lost connection). Each costs a read of every object.
func (u *UI) Snapshots() uint64 { return u.hub.snapshots.Load() }

// Revision is the newest revision of the cell the view has applied.
func (u *UI) Revision() uint64 {
	u.hub.mu.RLock()
	defer u.hub.mu.RUnlock()
	return u.hub.rev
}

func (u *UI) routes() {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // embedded at build time
	}
	files := http.FileServerFS(sub)
	m := http.NewServeMux()
	m.Handle("GET /", securityHeaders(files))
	m.HandleFunc("GET /login", u.login)
	m.HandleFunc("POST /logout", u.logout)
	m.HandleFunc("GET /api/me", u.authed(u.me))
	m.HandleFunc("GET /api/events", u.authed(u.serveEvents))
	m.HandleFunc("GET /api/job", u.authed(u.job))
	m.HandleFunc("GET /api/machine", u.authed(u.machine))
	m.HandleFunc("GET /api/logs", u.authed(u.logs))
	m.HandleFunc("GET /api/tenants", u.authed(u.tenants))
	m.HandleFunc("POST /api/stop", u.authed(u.stop))
	m.HandleFunc("POST /api/drain", u.authed(u.drain))
	u.mux = m
}

// securityHeaders: nothing is loaded from elsewhere, nothing is framed.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}
