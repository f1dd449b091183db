// Package apicheck holds the validators of every request of the cell's
// API (proto/cell/v1): each field against its bound in package limits
// (lengths, counts, syntax, enum ranges, finite numbers), then the whole
// job spec against its byte budget.
//
// Contract:
//   - One validator per request message; the store's gRPC layer
//     (cellstate) calls it before anything else and answers its error as
//     InvalidArgument, and clients that check before sending (jobspec's
//     parser, the scheduler SDK) call the same function, so what they pass
//     is never refused later with another message.
//   - Every error is a *FieldError naming the field as the .proto spells
//     it (spec.task.env, claims[3].machine_id) and quotes at most
//     limits.MaxQuoted bytes of the offending value (limits.Quote).
//   - Cost is linear in the request's size and counts are checked before
//     the elements are, so an oversized list is refused without walking it.
//   - Pure: no I/O, no clocks, no goroutines. It knows nothing of the
//     cell's state (whether a scheduler is registered, a job exists); the
//     store checks those.
//
// It lives under pbconv, the other half of reading the API (conversions
// from protobuf do not validate; this does), so every part that may read
// the API (store, schedulers, jobspec) may import it.
package apicheck
