package cellstate

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/txn"
)

// Hand-written encoders for the two records every commit writes (a task
// and a machine per claim). They produce the cell/v1 Task and Machine wire
// format directly from the store's records, without building a protobuf
// struct and walking it by reflection; wire_test.go checks that they decode
// to exactly what the generated code produces. Field numbers are those of
// proto/cell/v1/cell.proto. Proto3 rules: zero values are omitted.

func appendString(b []byte, f protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, f, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, f protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, f, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// appendInt32 encodes an int32 as protobuf does (negative: 10 bytes).
func appendInt32(b []byte, f protowire.Number, v int32) []byte {
	return appendVarint(b, f, uint64(int64(v)))
}

func sizeVarintField(f protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(f) + protowire.SizeVarint(v)
}

func sizeResources(r txn.Resources) int {
	return sizeVarintField(1, uint64(r.CPUMilli)) + sizeVarintField(2, uint64(r.MemoryBytes)) +
		sizeVarintField(3, uint64(r.DiskBytes)) + sizeVarintField(4, uint64(r.GPUMilli))
}

// appendResources appends a Resources message field (always present: the
// generated code sets it).
func appendResources(b []byte, f protowire.Number, r txn.Resources) []byte {
	b = protowire.AppendTag(b, f, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sizeResources(r)))
	b = appendVarint(b, 1, uint64(r.CPUMilli))
	b = appendVarint(b, 2, uint64(r.MemoryBytes))
	b = appendVarint(b, 3, uint64(r.DiskBytes))
	return appendVarint(b, 4, uint64(r.GPUMilli))
}

// appendTaskRecord appends the encoding of t.pb().
func appendTaskRecord(b []byte, t *task) []byte {
	k := t.t
	b = appendString(b, 1, k.Key.Job)
	b = appendVarint(b, 2, uint64(k.Key.Index))
	b = appendString(b, 3, k.Scheduler)
	b = appendInt32(b, 4, k.Priority)
	b = appendVarint(b, 5, uint64(k.State))
	b = appendString(b, 6, k.Machine)
	b = appendResources(b, 7, k.Resources)
	for _, d := range k.Devices {
		b = protowire.AppendTag(b, 8, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizeVarintField(1, uint64(d.Device))+sizeVarintField(2, uint64(d.Milli))))
		b = appendVarint(b, 1, uint64(d.Device))
		b = appendVarint(b, 2, uint64(d.Milli))
	}
	b = appendVarint(b, 9, uint64(k.Attempt))
	b = appendInt32(b, 10, t.exitCode)
	b = appendString(b, 11, t.message)
	b = appendVarint(b, 12, uint64(t.submitTime))
	b = appendVarint(b, 13, uint64(t.assignTime))
	b = appendVarint(b, 14, uint64(t.startTime))
	b = appendVarint(b, 15, uint64(t.finishTime))
	// Issue 13: version and readiness, before mod_revision (which must
	// end a new task's record: patchRevision).
	b = appendVarint(b, 130, t.version)
	if t.ready {
		b = protowire.AppendTag(b, 131, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	b = appendVarint(b, 132, uint64(t.readyTime))
	b = appendVarint(b, 133, uint64(t.versionTime))
	b = appendVarint(b, 16, t.modRev)
	b = appendVarint(b, 18, uint64(t.failures))
	b = appendVarint(b, 19, uint64(t.notBefore))
	b = appendString(b, 20, t.lastMachine)
	b = appendString(b, 120, t.preemptedBy)
	b = appendEvents(b, t.events)
	return appendString(b, 151, k.Pin)
}

// appendLabels encodes a label map as Machine field 2 (map entries, in
// map order, which protobuf allows).
func appendLabels(b []byte, labels map[string]string) []byte {
	for k, v := range labels {
		size := protowire.SizeTag(1) + protowire.SizeBytes(len(k)) + protowire.SizeTag(2) + protowire.SizeBytes(len(v))
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, v)
	}
	return b
}

// appendMachineRecord appends the encoding of m.pb().
func appendMachineRecord(b []byte, m *machine) []byte {
	x := m.m
	b = appendString(b, 1, x.ID)
	b = append(b, m.labelsWire...)
	b = appendResources(b, 3, x.Capacity)
	b = appendResources(b, 4, x.Allocated)
	if len(x.DeviceUsed) > 0 {
		size := 0
		for _, u := range x.DeviceUsed {
			size += protowire.SizeVarint(uint64(u))
		}
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		for _, u := range x.DeviceUsed {
			b = protowire.AppendVarint(b, uint64(u))
		}
	}
	b = appendVarint(b, 6, uint64(x.State))
	b = appendVarint(b, 7, x.Seq)
	b = appendVarint(b, 9, uint64(m.gpuMemoryBytes))
	b = appendVarint(b, 11, m.modRev)
	b = appendString(b, 13, m.registeredBy)
	if m.drain != nil {
		// Rare (cordoned machines only): the generic encoder will do.
		d, _ := proto.Marshal(m.drain)
		b = protowire.AppendTag(b, 170, protowire.BytesType)
		b = protowire.AppendBytes(b, d)
	}
	return b
}

// appendNested appends field f holding the message that enc writes,
// using scratch to learn its length first.
func appendNested(b []byte, f protowire.Number, scratch *[]byte, enc func([]byte) []byte) []byte {
	*scratch = enc((*scratch)[:0])
	b = protowire.AppendTag(b, f, protowire.BytesType)
	return protowire.AppendBytes(b, *scratch)
}
