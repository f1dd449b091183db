package cellstate

import (
	"sort"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

func sortSnapshot(s *cellv1.SnapshotResponse) {
	sort.Slice(s.Machines, func(a, b int) bool { return s.Machines[a].Id < s.Machines[b].Id })
	sort.Slice(s.Jobs, func(a, b int) bool { return s.Jobs[a].Id < s.Jobs[b].Id })
	sort.Slice(s.Tasks, func(a, b int) bool {
		if s.Tasks[a].JobId != s.Tasks[b].JobId {
			return s.Tasks[a].JobId < s.Tasks[b].JobId
		}
		return s.Tasks[a].Index < s.Tasks[b].Index
	})
	s.Last = false
}
