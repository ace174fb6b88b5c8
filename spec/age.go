package spec

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

var ageRE = regexp.MustCompile(`^([0-9]+) *(s|m|h|d|w)$`)

// ParseAge converts an age such as "7d", "12h", "30m", "2w" or "90s" to a
// duration (cache.max-age, `dib cache prune --older-than`).
func ParseAge(s string) (time.Duration, error) {
	m := ageRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not an age like 7d, 12h, 30m, 2w or 90s", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > 100*365*24*3600 {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	unit := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[m[2]]
	if time.Duration(n) > (1<<62)/unit {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return time.Duration(n) * unit, nil
}
