package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
)

// completionTimeout keeps shell completion snappy when the cell is slow or
// not running: completion then just offers nothing.
const completionTimeout = 2 * time.Second

// completeSpecFiles offers YAML and JSON files for `job run`.
func completeSpecFiles(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return []string{"yaml", "yml", "json"}, cobra.ShellCompDirectiveFilterFileExt
}

// completeJobs offers the names of the cell's jobs (live and finished).
func (j *jobCommands) completeJobs(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()
	client, closeConn, err := j.client(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer closeConn()
	resp, err := cellclient.ListJobs(ctx, client, &cellv1.ListJobsRequest{IncludeFinished: true})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, s := range resp.GetJobs() {
		names = append(names, s.GetJob().GetSpec().GetName()+"\t"+jobStateName(s.GetJob().GetState()))
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// machineIDs lists the cell's machine ids for completion.
func (m *machineCommands) machineIDs(ctx context.Context) []string {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()
	client, closeConn, err := m.client(ctx)
	if err != nil {
		return nil
	}
	defer closeConn()
	resp, err := cellclient.ListMachines(ctx, client, &cellv1.ListMachinesRequest{})
	if err != nil {
		return nil
	}
	ids := make([]string, 0, len(resp.GetMachines()))
	for _, mc := range resp.GetMachines() {
		ids = append(ids, mc.GetId()+"\t"+machineStateName(mc.GetState()))
	}
	return ids
}
