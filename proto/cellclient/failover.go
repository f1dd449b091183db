package cellclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/omegacell/omegacell/proto/credentials"
)

// A replicated cell is served by several servers: one leader commits, the
// followers serve reads and answer writes with Unavailable and ErrorInfo
// NOT_LEADER naming the leader's address. Dial with several addresses
// ("a:7070,b:7070,c:7070") returns one connection that keeps a
// sub-connection to each server, sends every call to the server it
// believes leads (at first the first address), follows a NOT_LEADER
// answer to the leader it names (or to the next server while an election
// is in progress) and sends the call again: nothing was done. When the
// server it used goes away it moves on to another that is up; a call in
// flight when a server died or stopped answering (Unavailable,
// DeadlineExceeded) fails, its outcome unknown, and the caller's own retry
// goes to another server.

// ReasonNotLeader is the ErrorInfo reason of a write sent to a follower.
const ReasonNotLeader = "NOT_LEADER"

// Addresses splits a --server / CELL_ADDR value: one address or several
// separated by commas.
func Addresses(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Dial returns a connection to the cell at addrs (one host:port, or
// several separated by commas), secured as c says, with opts added. With
// one address it is a plain connection, exactly as before replication.
func Dial(addrs string, c credentials.Client, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	list := Addresses(addrs)
	if len(list) == 0 {
		return nil, errors.New("server address is empty (want host:port, or several separated by commas)")
	}
	if len(list) == 1 {
		transport, err := c.DialOption(list[0])
		if err != nil {
			return nil, err
		}
		return grpc.NewClient(list[0], append([]grpc.DialOption{transport}, opts...)...)
	}
	// The TLS server name is each address's own host (resolver.Address
	// .ServerName), not one for all.
	transport, err := c.DialOption("")
	if err != nil {
		return nil, err
	}
	f := &follower{}
	f.addrs = list
	f.leader.Store(&list[0])
	r := manual.NewBuilderWithScheme(fmt.Sprintf("omegacell-%p", f))
	state := resolver.State{}
	for _, a := range list {
		state.Addresses = append(state.Addresses, resolver.Address{Addr: a, ServerName: credentials.ServerName(a)})
	}
	r.InitialState(state)
	conn, err := grpc.NewClient(r.Scheme()+":///cell", append([]grpc.DialOption{
		transport, grpc.WithResolvers(r), grpc.WithConnectParams(reconnect),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"` + leaderBalancer + `":{}}]}`),
		grpc.WithChainUnaryInterceptor(f.unary), grpc.WithChainStreamInterceptor(f.stream),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("servers %q: %w", addrs, err)
	}
	conn.Connect()
	return conn, nil
}

// reconnect is how a multi-address connection reconnects to a server it
// lost. gRPC's default backoff grows to 120 s: a server that was down for
// ten seconds (killed, restarted) would be reconnected to only seconds
// after it is back, and if it wins the next election meanwhile every
// write waits for that. A cell's servers are few and on a LAN: retry
// each at least every second.
var reconnect = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: 2 * time.Second,
}

// Trace, when set (before dialing), receives a line for each move of a
// multi-address connection to another server: a NOT_LEADER redirect, a
// server that failed or hung. For diagnosing failovers (tests).
var Trace atomic.Pointer[func(string)]

func trace(format string, args ...any) {
	if f := Trace.Load(); f != nil {
		(*f)(fmt.Sprintf(format, args...))
	}
}

// follower is one connection's belief of where the leader is.
type follower struct {
	addrs  []string
	leader atomic.Pointer[string]
	next   atomic.Uint32
	traced atomic.Int64 // when the picker last traced (unix ns)
}

type followerKey struct{}

// moveOn makes the next call try hint, or (no usable hint) the next server.
func (f *follower) moveOn(hint, failed string) {
	for _, a := range f.addrs {
		if hint != "" && a == hint {
			f.leader.Store(&a)
			return
		}
	}
	cur := *f.leader.Load()
	if failed != "" && failed != cur {
		return // someone already moved on
	}
	i := int(f.next.Add(1)) % len(f.addrs)
	f.leader.Store(&f.addrs[i])
}

// notLeader returns the leader a NOT_LEADER error names ("" when none is
// known yet), and whether err is one.
func notLeader(err error) (string, bool) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		return "", false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Reason == ReasonNotLeader {
			return info.Metadata["leader"], true
		}
	}
	return "", false
}

// maxElection bounds how long a call waits for a leader to be elected.
const maxElection = 15 * time.Second

func (f *follower) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx = context.WithValue(ctx, followerKey{}, f)
	deadline := time.Now().Add(maxElection)
	for attempt := 0; ; attempt++ {
		tried := *f.leader.Load()
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil {
			return nil
		}
		hint, nl := notLeader(err)
		if !nl {
			switch status.Code(err) {
			case codes.Unavailable, codes.DeadlineExceeded:
				// That server is going away, or hangs (paused,
				// partitioned): the next call tries another.
				f.moveOn("", tried)
				trace("%s via %s failed (%v); next call to %s", method, tried, err, *f.leader.Load())
			}
			return err
		}
		f.moveOn(hint, tried)
		trace("%s via %s: not the leader (leader %q); trying %s", method, tried, hint, *f.leader.Load())
		if hint == "" || hint == tried || time.Now().After(deadline) {
			if time.Now().After(deadline) {
				return err
			}
			// An election is in progress: wait a little.
			t := time.NewTimer(min(time.Duration(attempt+1)*50*time.Millisecond, 500*time.Millisecond))
			select {
			case <-ctx.Done():
				t.Stop()
				return err
			case <-t.C:
			}
		}
	}
}

func (f *follower) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	tried := *f.leader.Load()
	s, err := streamer(context.WithValue(ctx, followerKey{}, f), desc, cc, method, opts...)
	if c := status.Code(err); err != nil && (c == codes.Unavailable || c == codes.DeadlineExceeded) {
		f.moveOn("", tried)
		trace("stream %s via %s failed (%v); next call to %s", method, tried, err, *f.leader.Load())
	}
	return s, err
}

// The balancer: a sub-connection per server, every call to the believed
// leader when it is up, else to another server that is up.
const leaderBalancer = "omegacell_leader"

var registerOnce sync.Once

func init() {
	registerOnce.Do(func() {
		balancer.Register(base.NewBalancerBuilder(leaderBalancer, pickerBuilder{}, base.Config{}))
	})
}

type pickerBuilder struct{}

func (pickerBuilder) Build(info base.PickerBuildInfo) balancer.Picker {
	if len(info.ReadySCs) == 0 {
		return base.NewErrPicker(balancer.ErrNoSubConnAvailable)
	}
	p := &picker{byAddr: make(map[string]balancer.SubConn, len(info.ReadySCs))}
	for sc, i := range info.ReadySCs {
		p.byAddr[i.Address.Addr] = sc
		p.any = append(p.any, sc)
	}
	return p
}

type picker struct {
	byAddr map[string]balancer.SubConn
	any    []balancer.SubConn
	n      atomic.Uint32
}

func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	if f, ok := info.Ctx.Value(followerKey{}).(*follower); ok {
		if sc := p.byAddr[*f.leader.Load()]; sc != nil {
			return balancer.PickResult{SubConn: sc}, nil
		}
		if now := time.Now().UnixNano(); Trace.Load() != nil && now-f.traced.Load() > int64(200*time.Millisecond) {
			f.traced.Store(now)
			trace("%s: %s is not connected; sending to another server", info.FullMethodName, *f.leader.Load())
		}
	}
	return balancer.PickResult{SubConn: p.any[int(p.n.Add(1))%len(p.any)]}, nil
}
