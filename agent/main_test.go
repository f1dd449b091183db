package agent

import (
	"os"
	"strings"
	"testing"
)

// agentHelperEnv makes the test binary run `cell agent` with the
// arguments in the variable, so tests can SIGKILL a real agent process.
const agentHelperEnv = "OMEGACELL_TEST_AGENT_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(agentHelperEnv); args != "" {
		cmd := Command()
		cmd.SetArgs(strings.Fields(args))
		if err := cmd.Execute(); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
