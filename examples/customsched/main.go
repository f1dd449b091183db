// Command customsched is a complete custom scheduler for an omegacell cell:
// its own placement policy (LowestID, in policy.go) run by the scheduler
// SDK, which does everything else — registering the name, following the
// cell, queueing the jobs that name it, committing decisions as optimistic
// transactions, retrying lost races, marking unschedulable jobs, metrics.
//
//	go run ./examples/customsched --server 127.0.0.1:7070 --name lowest-id --credentials DIR
//
// DIR is a scheduler/lowest-id bundle an admin of the cell issued:
//
//	cell credentials issue --role scheduler --name lowest-id --out DIR
//
// (without --credentials: $CELL_CREDENTIALS, then ./cell-data/pki/admin).
// Jobs reach it by naming it: `scheduler: lowest-id` in the job spec.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/schedulers/sdk"
)

func main() {
	server := flag.String("server", cmp.Or(os.Getenv("CELL_ADDR"), "127.0.0.1:7070"), "cell server gRPC address (env CELL_ADDR)")
	name := flag.String("name", "lowest-id", "scheduler name jobs refer to")
	metrics := flag.String("metrics", "", "Prometheus /metrics listen address (empty: off)")
	credDir := flag.String("credentials", "", "credential bundle directory (ca.pem, cert.pem, key.pem); env "+credentials.Env)
	insecure := flag.Bool("insecure", false, "connect without TLS (only to a cell started with --insecure)")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	creds, err := credentials.Client{Insecure: *insecure}.Resolve(*credDir)
	if err == nil {
		err = sdk.Run(ctx, sdk.Config{Server: *server, Credentials: creds, Name: *name, Policy: LowestID{}, MetricsAddr: *metrics})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "customsched:", err)
		os.Exit(1)
	}
}
