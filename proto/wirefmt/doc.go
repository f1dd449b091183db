// Package wirefmt reads and names the cell API's messages on the protobuf
// wire format, for the few places that must not decode them into objects:
// the server redacting, filtering and splitting encoded revisions
// (cellstate) and the web view following the cell (webui). A revision of a
// 100,000-task submission decoded into messages is hundreds of thousands
// of small objects; walked here it is none.
//
// Each walks the fields of one encoded message in order, as a decoder
// reads them (a field may repeat; the caller keeps the last value of a
// scalar, as proto does). The field numbers are those of
// proto/cell/v1/cell.proto; a test checks them against the generated
// descriptors. Nothing here validates what a decoder would (UTF-8, nested
// messages): callers check what they use.
package wirefmt
