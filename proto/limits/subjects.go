package limits

import (
	"fmt"
	"strings"
)

// NATS subjects are dot-separated tokens; a token must not contain '.',
// '*', '>' or whitespace. A machine id (MachineName) may contain '.', so it
// is escaped into a token: every '.' becomes '~'. MachineName never
// contains '~', so the escape is one-to-one and stays readable in NATS
// permission lists ("omegacell.logs.node-1~example~com").

// MachineToken returns the NATS subject token of a machine id, or an error
// if id is not a machine name (such an id never reaches NATS).
func MachineToken(id string) (string, error) {
	if !MachineName.MatchString(id) {
		return "", fmt.Errorf("machine id %q is not a machine name", id[:min(len(id), 100)])
	}
	return strings.ReplaceAll(id, ".", "~"), nil
}

// LogsSubject is the subject on which the agent of a machine answers the
// cell server's task-log requests: "<prefix>.logs.<machine token>". Only
// the server publishes there; only that machine's agent subscribes.
func LogsSubject(prefix, machineID string) (string, error) {
	token, err := MachineToken(machineID)
	if err != nil {
		return "", err
	}
	return prefix + ".logs." + token, nil
}
