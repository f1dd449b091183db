package cellserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"

	"github.com/omegacell/omegacell/pki"
)

// StartLocalCluster starts a replicated cell of n servers in this process
// (issue 15), for `cell dev --replicas` and `cell bench load --replicas`:
// each server has its own data directory under base.DataDir (replica-1 …
// replica-n), the CA of replica-1 (created on its first start) is copied
// to the others, the first serves gRPC on base.Listen and metrics on
// base.Metrics, the others on free loopback ports without metrics, and
// the cluster routes listen on free loopback ports. It returns the
// servers once every one is ready; on error none is left running.
func StartLocalCluster(base Config, n int, log *slog.Logger) ([]*Server, error) {
	if n < 2 {
		return nil, fmt.Errorf("a replicated cell needs at least 2 servers, not %d", n)
	}
	if base.Insecure {
		return nil, errors.New("a replicated cell needs its PKI (not insecure)")
	}
	dirs := make([]string, n)
	routes := make([]string, n)
	for i := range dirs {
		dirs[i] = filepath.Join(base.DataDir, fmt.Sprintf("replica-%d", i+1))
		var err error
		if routes[i], err = freeLoopback(); err != nil {
			return nil, err
		}
	}
	ca, err := pki.Ensure(filepath.Join(dirs[0], "pki"), base.TLSSANs, log)
	if err != nil {
		return nil, err
	}
	for _, d := range dirs[1:] {
		if err := ca.ShareCA(filepath.Join(d, "pki")); err != nil {
			return nil, err
		}
	}
	all := make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range all {
		cfg := base
		cfg.DataDir = dirs[i]
		if i > 0 {
			cfg.Listen, cfg.Metrics = "127.0.0.1:0", ""
		}
		cfg.Cluster.Name, cfg.Cluster.Listen, cfg.Cluster.Peers = fmt.Sprintf("replica-%d", i+1), routes[i], routes
		wg.Go(func() { all[i], errs[i] = Start(cfg, log.With("server", cfg.Cluster.Name)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, s := range all {
			if s != nil {
				s.Close()
			}
		}
		return nil, err
	}
	return all, nil
}

// Addrs is the servers' gRPC addresses as one list ("a,b,c"), what
// clients of a replicated cell dial (proto/cellclient).
func Addrs(servers []*Server) string {
	list := make([]string, len(servers))
	for i, s := range servers {
		list[i] = s.Addr()
	}
	return strings.Join(list, ",")
}

func freeLoopback() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
