package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		main     string
		settings map[string]string
		want     string
	}{
		{"v1.4.0", nil, "v1.4.0"},
		{"(devel)", map[string]string{"vcs.revision": "0123456789abcdef", "vcs.modified": "false"}, "devel-0123456789ab"},
		{"(devel)", map[string]string{"vcs.revision": "0123456789abcdef", "vcs.modified": "true"}, "devel-0123456789ab+dirty"},
		{"", nil, "devel"},
	} {
		info := &debug.BuildInfo{Main: debug.Module{Version: tc.main}}
		for k, v := range tc.settings {
			info.Settings = append(info.Settings, debug.BuildSetting{Key: k, Value: v})
		}
		if got := fromBuildInfo(info); got != tc.want {
			t.Errorf("%q %v: %q, want %q", tc.main, tc.settings, got, tc.want)
		}
	}
	if Version() == "" {
		t.Error("Version is empty")
	}
}
