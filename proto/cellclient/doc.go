// Package cellclient holds the client side of the cell API's protocol
// rules, so that every client (the CLI, the scheduler SDK, the agent, the
// benchmarks, the tests) follows them the same way:
//
//   - List calls are paged: [ListJobs] and [ListMachines] follow
//     next_page_token until the last page and return everything, merged,
//     with the revision of the first page. A listing of a cell that never
//     ends (a server that keeps returning tokens) stops at maxPages.
//   - A watch revision may arrive as fragments (WatchResponse.fragment):
//     [Assembler] joins them, so a caller sees one response per revision
//     and never resumes from a revision it holds only part of.
//   - Every Snapshot chunk, Watch response and RegisterMachine answer
//     names the cell (CellIdentity). [SameCell] tells whether two answers
//     come from the same cell incarnation; a client that sees another
//     one resnapshots (or registers again) instead of mixing histories.
//   - [MaxMessageBytes] is the receive limit a client sets, the server's
//     own send limit.
package cellclient
