// Package gpu is omegacell's built-in policy for GPU work: gang placement,
// GPU count and model constraints, gangs packed into few racks and
// machines, fractional GPUs sharing devices, and fragmentation-aware
// choice of machines.
//
// Fragmentation. The policy follows Fragmentation Gradient Descent (FGD)
// from Weng et al., "Beware of Fragmentation: Scheduling GPU-Sharing
// Workloads with Fragmentation Gradient Descent", USENIX ATC 2023. A
// machine's free GPU capacity is a fragment for a task type when that
// type cannot use it: all of it when the type does not fit on the machine
// at all, otherwise the free milli-GPU on devices the type cannot use
// (for a fractional type, devices with less free than it asks; for a
// whole-GPU type, partially used devices — exactly txn.StrandedGPUMilli).
// The machine's fragmentation is the expectation over the target workload,
// here the GPU requests of the cell's pending and running tasks
// ([view.View.GPUWorkload]; the task's own request when the cell has
// none). FGD places each task where the fragmentation grows least (its
// "gradient"). Ties go to the placement that strands the fewest GPU shares
// (the change of txn.StrandedGPUMilli), then to the tighter CPU and memory
// fit. Two simplifications against the paper: only GPU dimensions decide
// whether a task type fits (the workload is known by GPU request only),
// and device choice within a machine is txn.AssignDevices' (best fit on
// the most used device that still fits, which is what FGD's device
// gradient picks for the stranded measure), so there is one device
// chooser in omegacell.
//
// Gangs (job.Gang) are placed whole or not at all: the decision has a
// claim for every pending task or none, and [Policy.Modes] asks for an
// all-or-nothing commit, so a gang is never partially placed even when
// some claims lose a race. A gang is planned over every feasible GPU
// machine (no sampling: the plan needs the whole picture):
//  1. Each feasible machine's capacity for the gang's tasks is estimated
//     from its free resources and devices; machines are grouped by rack
//     (machines without a rack label form one group).
//  2. Fewest racks: the racks with the most capacity are taken until the
//     gang fits, and the last one is swapped for the rack that holds the
//     rest on the fewest machines, then with the least capacity to spare
//     (best fit, keeping big racks for big gangs).
//  3. Fewest machines within each rack: machines with the most capacity
//     first; the last, partially used machine is the one with the least
//     fragmentation gradient among those that hold the rest.
//  4. Each planned task is claimed on the decision's overlay, checked by
//     txn.Fits; if an estimate was optimistic the remaining tasks go to
//     the next machines in plan order. If any task is left, nothing is
//     claimed.
//
// Non-gang tasks are placed one by one, Borg-style (package policy):
// machines are sampled in random order until enough feasible ones are
// found and the task goes to the one with the least fragmentation
// gradient. Tasks without GPUs avoid GPU machines when others fit.
//
// The policy is pure and deterministic given its rng; see package policy.
package gpu
