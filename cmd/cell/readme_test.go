package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
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
	cell := exec.Command(cellBinary, cellArgs(t, quick[0][0])...)
	cell.Dir = dir
	logf, err := os.Create(filepath.Join(dir, "cell.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cell.Stdout, cell.Stderr = logf, logf
	if err := cell.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cell.Wait() }()
	defer func() {
		if cell.ProcessState == nil {
			cell.Process.Kill()
			<-exited
		}
		if t.Failed() {
			out, _ := os.ReadFile(filepath.Join(dir, "cell.log"))
			t.Logf("cell dev output:\n%s", tail(string(out), 4000))
		}
	}()
	// The cell's own admin bundle, which the walkthrough's commands find
	// in ./cell-data/pki/admin by themselves.
	waitForMachines(t, "127.0.0.1:7070", filepath.Join(dir, credentials.DefaultDir), 21)

	for _, line := range walk[0] {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		cmd := exec.CommandContext(ctx, cellBinary, cellArgs(t, line)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
		t.Logf("$ %s\n%s", line, tail(string(out), 1500))
	}

	// Ctrl-C stops the cell cleanly.
	cell.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("cell dev did not exit cleanly on SIGINT: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cell dev did not stop within 30 s of SIGINT")
	}
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
		r, err := client.ListMachines(ctx, &cellv1.ListMachinesRequest{})
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
