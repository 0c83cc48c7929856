package cluster

import (
	"strconv"
	"unicode"
	"unicode/utf8"
)

// logName makes a gossip node name (chosen by whoever joins) safe for a
// log record: control characters and bytes that are not UTF-8 escaped as
// in a Go string literal, so one record stays one line.
func logName(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			q := strconv.QuoteToASCII(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}
