// Package limits is what the cell's API accepts: bounds on counts and
// sizes, and the syntax of names. It is the one place these are written
// down. It lives beside the .proto files because it is part of the API's
// contract, and like them it imports nothing of the project, so every
// layer (agent and schedulers included) may use it.
//
// Contract:
//   - The store's validator (cellstate) refuses every request beyond these
//     with InvalidArgument naming the field.
//   - Clients that check input before sending it (jobspec, the scheduler
//     SDK, bench load) use the same values, or tighter ones stated next to
//     their own limits, so input they pass is never refused later with a
//     less precise error.
//   - Pure: constants and compiled regular expressions, no I/O.
package limits
