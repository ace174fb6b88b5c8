package layout

import "testing"

func TestSizeOf(t *testing.T) {
	tests := []struct {
		in    Size
		avail int64
		want  int64
	}{
		{Size{"50%", SizeText}, 1000, 500},
		{Size{"33%", SizeText}, 100, 33},
		{Size{"100%", SizeText}, 4292870144, 4292870144},
		{Size{"54%", SizeText}, 4292870144, 2318149877}, // int(4292870144 * 54 / 100.0)
		{Size{"12.5%", SizeText}, 800, 100},
		{Size{"8MiB", SizeText}, 1, 8 << 20}, // absolute sizes ignore avail
		{Size{"1024", SizeNumber}, 1, 1024},
		{Size{"1024.0", SizeNumber}, 1, 1024},
	}
	for _, tt := range tests {
		got, err := tt.in.Of(tt.avail)
		if err != nil || got != tt.want {
			t.Errorf("%+v.Of(%d) = %d, %v; want %d", tt.in, tt.avail, got, err, tt.want)
		}
	}
	for _, bad := range []Size{{"50%", SizeNumber}, {"[1]", SizeInvalid}, {"x%", SizeText}, {"4gib", SizeText}} {
		if n, err := bad.Of(100); err == nil {
			t.Errorf("%+v.Of(100) = %d, want an error", bad, n)
		}
	}
}
