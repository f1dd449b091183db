package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/omegacell/omegacell/cellserver"
	"github.com/omegacell/omegacell/pki"
)

// startDevServers starts the cell dev's servers: one, or with --replicas N
// a replicated cell of N servers in this process (package replication),
// each with its own data directory under --data (replica-1 ... replica-N),
// the CA of replica-1 copied to the others, gRPC on --listen for the first
// and on free ports for the others, cluster routes on free loopback
// ports. It returns the first server and the address list the parts dial.
func startDevServers(c devConfig, log *slog.Logger) (first *cellserver.Server, all []*cellserver.Server, addrs string, err error) {
	if c.replicas <= 1 {
		srv, err := cellserver.Start(c.server, log)
		if err != nil {
			return nil, nil, "", err
		}
		return srv, []*cellserver.Server{srv}, srv.Addr(), nil
	}
	if c.server.Insecure {
		return nil, nil, "", errors.New("--replicas: a replicated cell needs its PKI (not --insecure)")
	}
	dirs := make([]string, c.replicas)
	routes := make([]string, c.replicas)
	for i := range dirs {
		dirs[i] = filepath.Join(c.server.DataDir, fmt.Sprintf("replica-%d", i+1))
		if routes[i], err = freeLoopback(); err != nil {
			return nil, nil, "", err
		}
	}
	ca, err := pki.Ensure(filepath.Join(dirs[0], "pki"), c.server.TLSSANs, log)
	if err != nil {
		return nil, nil, "", err
	}
	for _, d := range dirs[1:] {
		if err := os.MkdirAll(filepath.Join(d, "pki"), 0o700); err != nil {
			return nil, nil, "", err
		}
		for _, f := range []string{pki.CAFile, pki.CAKeyFile} {
			b, err := os.ReadFile(filepath.Join(ca.Dir, f))
			if err == nil {
				err = os.WriteFile(filepath.Join(d, "pki", f), b, 0o600)
			}
			if err != nil {
				return nil, nil, "", err
			}
		}
	}
	all = make([]*cellserver.Server, c.replicas)
	errs := make([]error, c.replicas)
	var wg sync.WaitGroup
	for i := range all {
		cfg := c.server
		cfg.DataDir = dirs[i]
		if i > 0 {
			cfg.Listen, cfg.Metrics = "127.0.0.1:0", ""
		}
		cfg.Cluster = cellserver.ClusterConfig{Name: fmt.Sprintf("replica-%d", i+1), Listen: routes[i], Peers: routes}
		wg.Add(1)
		go func() {
			defer wg.Done()
			all[i], errs[i] = cellserver.Start(cfg, log.With("server", cfg.Cluster.Name))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, s := range all {
			if s != nil {
				s.Close()
			}
		}
		return nil, nil, "", err
	}
	list := make([]string, len(all))
	for i, s := range all {
		list[i] = s.Addr()
	}
	return all[0], all, strings.Join(list, ","), nil
}

func freeLoopback() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
