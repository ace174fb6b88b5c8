package diag

import "strings"

// Distance is the optimal-string-alignment (Damerau-Levenshtein) distance
// of a and b in runes: an insertion, deletion, substitution or swap of two
// neighbours each count as one typo. Strings over 64 runes are only
// compared for equality (a did-you-mean hint never needs more).
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		if a == b {
			return 0
		}
		return 1 << 20
	}
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// Closest returns the candidate nearest to s, ignoring case, when it is
// near enough to be a typo (at most a third of s's length, 1 to 3 edits),
// or a candidate that differs only in case; "" otherwise. Ties go to the
// first candidate. It is the "did you mean" of every hint.
func Closest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := Distance(strings.ToLower(s), strings.ToLower(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := min(max(len(s)/3, 1), 3)
	if bestD == 0 || bestD > limit {
		if bestD == 0 && best != s {
			return best // differs only in case
		}
		return ""
	}
	return best
}
