// Package service is omegacell's built-in policy for long-running
// services: replicas spread evenly over failure domains, at most a given
// number per machine, label constraints, worst fit to leave headroom, and
// preemption of lower-priority work when nothing fits. Commits are
// incremental and fine-grained (all-or-nothing for a gang).
//
// Placement of one equivalence class of replicas (see package policy):
//   - Failure domains are the values of the job's spread key (zone, rack)
//     among ready machines. Each replica goes to the domain that holds the
//     fewest replicas of the job so far (those already running plus this
//     decision's), ties broken by a random rotation of the domains drawn once per decision;
//     a domain leaves the rotation when no machine in it fits. So counts
//     never differ by more than one while every domain has room. Machines
//     without the spread label are not used when the key is set; with no
//     spread key, or no ready machine carrying it, the cell is one domain.
//   - Within a domain, machines are sampled in random order until enough
//     feasible ones are found (relaxed randomization, as in Borg), and the
//     replica goes to the worst fit: the machine with the most CPU plus
//     memory fraction left after it, which leaves headroom for load spikes
//     and spreads load. Machines with GPUs rank behind all others for
//     replicas that ask for none.
//   - Max-per-machine (anti-affinity) and constraints are checked by the
//     same rules txn.Validate applies, on the decision's own overlay.
//   - When no machine fits, the policy looks for a machine where evicting
//     lower-priority tasks makes room: victims must be preemptible by the
//     replica (txn.CanPreempt: strictly lower priority and never a
//     production task, so production never preempts production). On each
//     probed machine the lowest-priority, then largest, victims are taken
//     until the replica fits, then any victim not needed is given back.
//     Among the machines found, the one whose victims have the lowest
//     highest priority wins, then the fewest victims, then the lowest total
//     priority, then the emptier failure domain. Victims go back to pending
//     under their own scheduler when the transaction commits.
//
// The policy is pure and deterministic given its rng; see package policy.
package service
