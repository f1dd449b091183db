package limits

import (
	"regexp"
	"strings"
	"testing"
)

func TestNamePatterns(t *testing.T) {
	cases := []struct {
		name string
		re   *regexp.Regexp
		max  int
		good []string
		bad  []string
	}{
		{"job", JobName, MaxJobNameLen,
			[]string{"a", "hello", "train-7.v2", "0"},
			[]string{"", "-a", "a-", "A", "a_b", "a b", ".a"}},
		{"scheduler", SchedulerName, MaxSchedulerNameLen,
			[]string{"batch", "gpu", "team-a-2"},
			[]string{"", "Batch", "a.b", "a_b", "-a", "a-"}},
		{"machine", MachineName, MaxMachineNameLen,
			[]string{"m0001", "node-1.rack_2", "M"},
			[]string{"", "-m", "m-", "a/b", "a b"}},
		{"label key", LabelKey, MaxLabelKeyLen,
			[]string{"rack", "gpu.model", "example.com/team", "Zone_1"},
			[]string{"", "/a", "a/", "a b", "a=b"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, s := range c.good {
				if !c.re.MatchString(s) {
					t.Errorf("%q refused", s)
				}
			}
			for _, s := range c.bad {
				if c.re.MatchString(s) {
					t.Errorf("%q accepted", s)
				}
			}
			// The pattern itself bounds the length at the stated maximum.
			if longest := strings.Repeat("a", c.max); !c.re.MatchString(longest) {
				t.Errorf("%d characters refused", c.max)
			}
			if tooLong := strings.Repeat("a", c.max+1); c.re.MatchString(tooLong) {
				t.Errorf("%d characters accepted", c.max+1)
			}
		})
	}
}
