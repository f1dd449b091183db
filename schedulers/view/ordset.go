package view

import "slices"

// ordSet is a set of machine ordinals kept as an ascending slice: iteration
// is in a stable order, the slice can be handed out read-only, and adding a
// newly registered machine (the largest ordinal) is an append.
type ordSet []int32

func (s *ordSet) insert(ord int32) {
	i, found := slices.BinarySearch(*s, ord)
	if !found {
		*s = slices.Insert(*s, i, ord)
	}
}

func (s *ordSet) remove(ord int32) {
	if i, found := slices.BinarySearch(*s, ord); found {
		*s = slices.Delete(*s, i, i+1)
	}
}

func (s ordSet) contains(ord int32) bool {
	_, found := slices.BinarySearch(s, ord)
	return found
}

// union merges ascending ordinal lists into a new ascending list without
// duplicates.
func union(lists [][]int32) []int32 {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	out := make([]int32, 0, n)
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
