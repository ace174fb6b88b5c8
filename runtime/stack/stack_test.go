package stack

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestReleaseOrderAndFaults(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		fail    map[int]string // index -> "err" | "panic"
		wantErr []string
	}{
		{name: "empty", n: 0},
		{name: "all ok", n: 4},
		{name: "first pushed fails", n: 4, fail: map[int]string{0: "err"}, wantErr: []string{"release r0: boom 0"}},
		{name: "last pushed fails", n: 4, fail: map[int]string{3: "err"}, wantErr: []string{"release r3: boom 3"}},
		{name: "several fail", n: 5, fail: map[int]string{1: "err", 3: "err"}, wantErr: []string{"release r3: boom 3", "release r1: boom 1"}},
		{name: "panic", n: 3, fail: map[int]string{1: "panic"}, wantErr: []string{"release r1: panic: p1"}},
		{name: "every one fails", n: 3, fail: map[int]string{0: "err", 1: "err", 2: "err"}, wantErr: []string{"release r2: boom 2", "release r1: boom 1", "release r0: boom 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Stack
			var ran []int
			for i := range tt.n {
				s.Push(fmt.Sprintf("r%d", i), func(context.Context) error {
					ran = append(ran, i)
					switch tt.fail[i] {
					case "err":
						return fmt.Errorf("boom %d", i)
					case "panic":
						panic(fmt.Sprintf("p%d", i))
					}
					return nil
				})
			}
			err := s.Release(context.Background())
			if s.Len() != 0 {
				t.Fatalf("stack not empty after Release: %v", s.Names())
			}
			want := make([]int, 0, tt.n)
			for i := tt.n - 1; i >= 0; i-- {
				want = append(want, i)
			}
			if !reflect.DeepEqual(ran, want) && !(len(ran) == 0 && len(want) == 0) {
				t.Errorf("order = %v, want %v", ran, want)
			}
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("want error, got nil")
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.wantErr) {
				t.Errorf("error lines = %q, want %q", got, tt.wantErr)
			}
		})
	}
}

func TestReleaseIgnoresCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var s Stack
	var sawErr error
	s.Push("unmount", func(ctx context.Context) error {
		sawErr = ctx.Err()
		return nil
	})
	if err := s.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if sawErr != nil {
		t.Errorf("release saw a cancelled context: %v", sawErr)
	}
}

func TestReleaseTo(t *testing.T) {
	var s Stack
	var ran []string
	push := func(n string, fail bool) {
		s.Push(n, func(context.Context) error {
			ran = append(ran, n)
			if fail {
				return errors.New("x")
			}
			return nil
		})
	}
	push("workspace", false)
	mark := s.Mark()
	push("proc", true)
	push("sys", false)
	if err := s.ReleaseTo(context.Background(), mark); err == nil {
		t.Error("want the proc error")
	}
	if got := s.Names(); !reflect.DeepEqual(got, []string{"workspace"}) {
		t.Errorf("left = %v", got)
	}
	if !reflect.DeepEqual(ran, []string{"sys", "proc"}) {
		t.Errorf("ran = %v", ran)
	}
	// A mark above the depth releases nothing.
	if err := s.ReleaseTo(context.Background(), 5); err != nil || s.Len() != 1 {
		t.Errorf("ReleaseTo(5) = %v, len %d", err, s.Len())
	}
}

func TestReleasePushedDuringRelease(t *testing.T) {
	// A release that pushes another release (e.g. a lazy unmount fallback)
	// must not leave it behind.
	var s Stack
	var ran []string
	s.Push("outer", func(context.Context) error {
		ran = append(ran, "outer")
		s.Push("late", func(context.Context) error { ran = append(ran, "late"); return nil })
		return nil
	})
	if err := s.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 0 || !reflect.DeepEqual(ran, []string{"outer", "late"}) {
		t.Errorf("len %d ran %v", s.Len(), ran)
	}
}
