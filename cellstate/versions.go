package cellstate

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
)

// Durable job versions (issue 13): jv/<job id>/<version, big-endian> holds
// an encoded JobVersion. They are written in the batch of the revision
// that made them (like tenant policies, they are not part of the watch
// stream: a watcher sees the job's current spec), trimmed to the newest
// limits.MaxJobVersions, and deleted with the job.

var prefixVersion = []byte("jv/")

func versionPrefix(job string) []byte {
	return append(append(append([]byte(nil), prefixVersion...), job...), '/')
}

func versionKey(job string, v uint64) []byte {
	return binary.BigEndian.AppendUint64(versionPrefix(job), v)
}

// versionWrite is a version made by the current operation.
type versionWrite struct {
	job string
	v   *cellv1.JobVersion
}

// writeVersions writes a revision's new versions, deletes trimmed ones and
// those of deleted jobs.
func writeVersions(wb *pebble.Batch, cs *changeSet) error {
	for _, w := range cs.versions {
		data, err := proto.Marshal(w.v)
		if err != nil {
			return fmt.Errorf("encode version %d of job %s: %w", w.v.Version, w.job, err)
		}
		if err := wb.Set(versionKey(w.job, w.v.Version), data, nil); err != nil {
			return err
		}
	}
	for _, k := range cs.versionsGone {
		if err := wb.Delete(k, nil); err != nil {
			return err
		}
	}
	for _, d := range cs.deleted {
		lo := versionPrefix(d.id)
		hi := append(append(append([]byte(nil), prefixVersion...), d.id...), '/'+1)
		if err := wb.DeleteRange(lo, hi, nil); err != nil {
			return err
		}
	}
	return nil
}

// recoverVersions reads every job's kept versions (after the jobs).
func (s *Store) recoverVersions() error {
	st := s.st
	err := s.scan(prefixVersion, func(k, v []byte) error {
		jv := &cellv1.JobVersion{}
		if err := proto.Unmarshal(v, jv); err != nil {
			return fmt.Errorf("cellstate: recover version %q: %w", k, err)
		}
		rest := k[len(prefixVersion):]
		if len(rest) < 9 {
			return fmt.Errorf("cellstate: recover: bad version key %q", k)
		}
		if j := st.jobs[string(rest[:len(rest)-9])]; j != nil {
			j.versions = append(j.versions, jv)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, j := range st.jobs {
		sort.Slice(j.versions, func(a, b int) bool { return j.versions[a].Version < j.versions[b].Version })
		if n := len(j.versions); n > limits.MaxJobVersions {
			j.versions = j.versions[n-limits.MaxJobVersions:]
		}
		j.noteRolloutOf(st)
	}
	return nil
}

func (j *jobEntry) noteRolloutOf(st *state) { st.noteRollout(j.job) }
