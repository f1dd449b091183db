// Package pbconv converts between the public API types (cell/v1 protobuf)
// and the pure transaction model (txn). It is the only place that knows both,
// so the store, the schedulers and the simulator convert the same way.
//
// Conversions from protobuf do not validate; callers validate requests
// first with package pbconv/apicheck (the store's API layer does, naming
// the field).
package pbconv
