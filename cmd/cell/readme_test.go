package main

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
	"github.com/omegacell/omegacell/proto/credentials"
)

// readmeBlocks returns the ```sh blocks of README.md under each "## "
// heading, in order.
func readmeBlocks(t *testing.T) map[string][][]string {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blocks := map[string][][]string{}
	section, in := "", false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			section = strings.TrimPrefix(line, "## ")
		case line == "```sh":
			in = true
			blocks[section] = append(blocks[section], nil)
		case line == "```":
			in = false
		case in && strings.TrimSpace(line) != "":
			b := blocks[section]
			b[len(b)-1] = append(b[len(b)-1], strings.TrimSpace(line))
		}
	}
	return blocks
}

// cellArgs turns "go run ./cmd/cell ARGS" into ARGS: the test runs the
// binary TestMain built from this same source, so the command is the same
// program with the same arguments, without a compile per line.
func cellArgs(t *testing.T, line string) []string {
	t.Helper()
	const prefix = "go run ./cmd/cell "
	if !strings.HasPrefix(line, prefix) {
		t.Fatalf("README command %q does not start with %q", line, prefix)
	}
	return strings.Fields(strings.TrimPrefix(line, prefix))
}

// TestREADME runs the README's quickstart cell and every walkthrough
// command, literally, in a fresh directory, and checks that the README's
// test command is the one CI runs.
func TestREADME(t *testing.T) {
	blocks := readmeBlocks(t)
	quick := blocks["Quickstart"]
	if len(quick) != 2 || len(quick[0]) != 1 || len(quick[1]) != 1 {
		t.Fatalf("the quickstart must have exactly two one-line commands (run a cell; run the tests), got %q", quick)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains("\n"+string(ci)+"\n", "\n"+quick[1][0]+"\n") {
		t.Fatalf(".ci/run does not run the README's test command %q", quick[1][0])
	}
	walk := blocks["Walkthrough"]
	if len(walk) != 1 || len(walk[0]) < 5 {
		t.Fatalf("walkthrough block missing: %q", walk)
	}

	dir := t.TempDir()
	repo, _ := filepath.Abs("../..")
	if err := os.Symlink(filepath.Join(repo, "examples"), filepath.Join(dir, "examples")); err != nil {
		t.Fatal(err)
	}
	// The README's cell, with its own ports and data directory: a user's
	// `cell dev` may be running on the defaults (127.0.0.1:7070, :7071,
	// ./cell-data), and this test must neither collide with it nor drive
	// it. The walkthrough commands reach this cell through $CELL_ADDR, as
	// the README's commands reach the default cell.
	args := append(cellArgs(t, quick[0][0]), "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
		"--nats-listen", "127.0.0.1:-1", "--data", filepath.Join(dir, "cell-data"),
		"--stop-tasks-on-exit") // a test leaves no task process behind
	cell := exec.Command(cellBinary, args...)
	cell.Dir = dir
	logPath := filepath.Join(dir, "cell.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cell.Stdout, cell.Stderr = logf, logf
	if err := cell.Start(); err != nil {
		t.Fatal(err)
	}
	// Only this goroutine calls Wait (which sets cell.ProcessState); the
	// test learns of the exit from the channel, never from ProcessState.
	exited := make(chan error, 1)
	go func() { exited <- cell.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cell.Process.Kill()
			<-exited
		}
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("cell dev output:\n%s", tail(string(out), 4000))
		}
	}()
	// The cell's own admin bundle, which the walkthrough's commands find
	// in ./cell-data/pki/admin by themselves.
	addr := bannerAddress(t, logPath, exited, &stopped)
	waitForMachines(t, addr, filepath.Join(dir, credentials.DefaultDir), 21)

	for _, line := range walk[0] {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		cmd := exec.CommandContext(ctx, cellBinary, cellArgs(t, line)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CELL_ADDR="+addr)
		out, err := cmd.CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if strings.Contains(line, " job plan ") && errors.As(err, &ee) && ee.ExitCode() == 1 {
			err = nil // `job plan` exits 1 when it shows changes, as nomad job plan does
		}
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
		t.Logf("$ %s\n%s", line, tail(string(out), 1500))
	}

	// Ctrl-C stops the cell cleanly.
	cell.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("cell dev did not exit cleanly on SIGINT: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cell dev did not stop within 30 s of SIGINT")
	}
}

// bannerAddress waits for the banner of `cell dev` in its log and returns
// the gRPC address it serves (the test asked for a free port).
func bannerAddress(t *testing.T, logPath string, exited <-chan error, stopped *bool) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^\s*gRPC API\s+(\S+)\s*$`)
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		out, _ := os.ReadFile(logPath)
		if m := re.FindSubmatch(out); m != nil {
			return string(m[1])
		}
		select {
		case err := <-exited:
			*stopped = true
			t.Fatalf("cell dev exited before its banner: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatal("no banner from cell dev within 2 minutes")
	return ""
}

// waitForMachines waits until the cell at addr lists at least n ready
// machines to the admin bundle in credDir (which the cell writes on its
// first start).
func waitForMachines(t *testing.T, addr, credDir string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var admin *credentials.Bundle
	for admin == nil {
		var err error
		if admin, err = credentials.Load(credDir); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("no admin bundle: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(grpccreds.NewTLS(admin.ClientTLS(credentials.ServerName(addr)))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := cellv1.NewMachineServiceClient(conn)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r, err := cellclient.ListMachines(ctx, client, &cellv1.ListMachinesRequest{})
		cancel()
		if err == nil {
			ready := 0
			for _, m := range r.Machines {
				if m.State == cellv1.MachineState_MACHINE_STATE_READY {
					ready++
				}
			}
			if ready >= n {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the cell at %s never had %d ready machines", addr, n)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
