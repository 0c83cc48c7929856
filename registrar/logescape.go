package registrar

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rserpool-go/registrar/asap"
)

// Untrusted strings in logs. Pool handles are opaque bytes chosen by PEs
// and PUs, paths come from any HTTP client: written as they are, a
// newline would split one record over several lines (hclog prints a
// multi-line value as an indented block), and control characters or bytes
// that are not UTF-8 would reach the terminal or the log shipper. They go
// through escape (or ph for pool handles) first, so one record stays one
// line.

// escape returns s with control characters, invalid UTF-8 and the
// backslash escaped as in a Go string literal (without the quotes);
// printable text is unchanged.
func escape(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || r == '\\' || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	q := strconv.QuoteToASCII(s)
	q = q[1 : len(q)-1]
	return strings.ReplaceAll(q, `\"`, `"`)
}

// logHandle shows a pool handle in logs as the admin API does: printable
// ASCII as it is, anything else as 0x-hex.
type logHandle asap.PoolHandle

func (h logHandle) String() string {
	b, _ := asap.PoolHandle(h).MarshalText()
	return string(b)
}

// ph wraps a pool handle for a log record.
func ph(h asap.PoolHandle) logHandle { return logHandle(h) }
