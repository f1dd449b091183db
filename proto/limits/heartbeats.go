package limits

import "strings"

// Heartbeat subjects say who sends: "<prefix>.heartbeats.<machine token>"
// is the agent of that machine; "<prefix>.heartbeats.<fleet token>.fleet"
// is a simulated fleet whose machines are named <fleet>-<digits>. The NATS
// server lets each agent publish only on its own subject, and the cell
// server accepts on a subject only heartbeats of machines its sender speaks
// for.

// HeartbeatSubject is where the agent of machineID publishes.
func HeartbeatSubject(prefix, machineID string) (string, error) {
	t, err := MachineToken(machineID)
	if err != nil {
		return "", err
	}
	return prefix + ".heartbeats." + t, nil
}

// FleetHeartbeatSubject is where a simulated fleet named fleet publishes.
func FleetHeartbeatSubject(prefix, fleet string) (string, error) {
	t, err := MachineToken(fleet)
	if err != nil {
		return "", err
	}
	return prefix + ".heartbeats." + t + ".fleet", nil
}

// HeartbeatWildcard is what the cell server subscribes to.
func HeartbeatWildcard(prefix string) string { return prefix + ".heartbeats.>" }

// HeartbeatSender reads who sent on a heartbeat subject: a machine id, or
// with fleet set a fleet's name. ok is false for any other subject.
func HeartbeatSender(prefix, subject string) (name string, fleet, ok bool) {
	rest, found := strings.CutPrefix(subject, prefix+".heartbeats.")
	if !found {
		return "", false, false
	}
	if tok, isFleet := strings.CutSuffix(rest, ".fleet"); isFleet {
		rest, fleet = tok, true
	}
	if strings.Contains(rest, ".") {
		return "", false, false
	}
	name = strings.ReplaceAll(rest, "~", ".")
	if !MachineName.MatchString(name) {
		return "", false, false
	}
	return name, fleet, true
}
