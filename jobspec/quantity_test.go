package jobspec

import (
	"strings"
	"testing"
)

func TestParseCPU(t *testing.T) {
	cases := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"500m", 500, ""},
		{"2", 2000, ""},
		{"0.5", 500, ""},
		{"1.5", 1500, ""},
		{".25", 250, ""},
		{"0.1", 100, ""},
		{"1e3", 1000000, ""},
		{"2000m", 2000, ""},
		{" 3 ", 3000, ""},
		{"0", 0, ""},
		{"0.0005", 0, "finer than one millicore"},
		{"1.5m", 0, "finer than one millicore"},
		{"-1", 0, "must not be negative"},
		{"2cores", 0, `unknown unit "cores"`},
		{"2k", 0, `unknown unit "k"`},
		{"", 0, "not a number"},
		{"abc", 0, "not a number"},
		{"1/2", 0, "not a number"},
		{"9223372036854775807", 0, "too large"},
		{"1e999", 0, "too large"},
		{"1e-999", 0, "finer than one millicore"},
		{"1e1000", 0, "not a number"},
	}
	for _, c := range cases {
		got, err := ParseCPU(c.in)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("ParseCPU(%q): %v", c.in, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("ParseCPU(%q) = %d, %v; want error containing %q", c.in, got, err, c.wantErr)
		case c.wantErr == "" && got != c.want:
			t.Errorf("ParseCPU(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	cases := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"512Mi", 512 << 20, ""},
		{"2Gi", 2 << 30, ""},
		{"1G", 1e9, ""},
		{"1.5Gi", 3 << 29, ""},
		{"1k", 1000, ""},
		{"1Ki", 1024, ""},
		{"1000000", 1e6, ""},
		{"7Ei", 7 << 60, ""},
		{"0.5Ki", 512, ""},
		{"0.3Ki", 0, "not a whole number of bytes"},
		{"8Ei", 0, "too large"},
		{"512MB", 0, `did you mean "M" or "Mi"?`},
		{"1gi", 0, `did you mean "Gi"?`},
		{"1K", 0, `did you mean "k" or "Ki"?`},
		{"1KiB", 0, `did you mean "Ki"?`},
		{"12Qi", 0, `unknown unit "Qi" (want one of`},
		{"-5Mi", 0, "must not be negative"},
		{"5 Mi", 0, "not a number"},
	}
	for _, c := range cases {
		got, err := ParseBytes(c.in)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("ParseBytes(%q): %v", c.in, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("ParseBytes(%q) = %d, %v; want error containing %q", c.in, got, err, c.wantErr)
		case c.wantErr == "" && got != c.want:
			t.Errorf("ParseBytes(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestParseGPU(t *testing.T) {
	cases := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"0.5", 500, ""},
		{"2", 2000, ""},
		{"0.125", 125, ""},
		{"8", 8000, ""},
		{"0.0001", 0, "finer than a thousandth"},
		{"1Gi", 0, "GPUs take no unit"},
		{"-1", 0, "must not be negative"},
	}
	for _, c := range cases {
		got, err := ParseGPU(c.in)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("ParseGPU(%q): %v", c.in, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("ParseGPU(%q) = %d, %v; want error containing %q", c.in, got, err, c.wantErr)
		case c.wantErr == "" && got != c.want:
			t.Errorf("ParseGPU(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestFormatRoundTrips(t *testing.T) {
	cpu := []struct {
		milli int64
		want  string
	}{{500, "500m"}, {2000, "2"}, {1500, "1.5"}, {0, "0"}, {1, "1m"}, {1234, "1.234"}, {16500, "16.5"}, {999, "999m"}}
	for _, c := range cpu {
		if got := FormatCPU(c.milli); got != c.want {
			t.Errorf("FormatCPU(%d) = %q, want %q", c.milli, got, c.want)
		}
		if back, err := ParseCPU(FormatCPU(c.milli)); err != nil || back != c.milli {
			t.Errorf("ParseCPU(FormatCPU(%d)) = %d, %v", c.milli, back, err)
		}
	}
	bytes := []struct {
		b    int64
		want string
	}{
		{512 << 20, "512Mi"}, {2 << 30, "2Gi"}, {1e9, "1G"}, {1000, "1k"}, {1023, "1023"},
		{1024000, "1000Ki"}, {1536 << 20, "1536Mi"}, {0, "0"}, {3e12, "3T"}, {1 << 62, "4Ei"},
	}
	for _, c := range bytes {
		if got := FormatBytes(c.b); got != c.want {
			t.Errorf("FormatBytes(%d) = %q, want %q", c.b, got, c.want)
		}
		if back, err := ParseBytes(FormatBytes(c.b)); err != nil || back != c.b {
			t.Errorf("ParseBytes(FormatBytes(%d)) = %d, %v", c.b, back, err)
		}
	}
	gpu := []struct {
		milli int64
		want  string
	}{{500, "0.5"}, {2000, "2"}, {125, "0.125"}, {1, "0.001"}, {0, "0"}, {8000, "8"}, {250, "0.25"}}
	for _, c := range gpu {
		if got := FormatGPU(c.milli); got != c.want {
			t.Errorf("FormatGPU(%d) = %q, want %q", c.milli, got, c.want)
		}
		if back, err := ParseGPU(FormatGPU(c.milli)); err != nil || back != c.milli {
			t.Errorf("ParseGPU(FormatGPU(%d)) = %d, %v", c.milli, back, err)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	cases := []struct {
		b    int64
		want string
	}{
		{0, "0"}, {1023, "1023"}, {1024, "1Ki"}, {123456789, "117.7Mi"},
		{3 << 30, "3Gi"}, {3328599654, "3.1Gi"}, {1 << 62, "4Ei"},
	}
	for _, c := range cases {
		if got := HumanBytes(c.b); got != c.want {
			t.Errorf("HumanBytes(%d) = %q, want %q", c.b, got, c.want)
		}
	}
}
