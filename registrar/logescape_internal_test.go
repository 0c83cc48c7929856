package registrar

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/sharedtest"
)

// Ensure untrusted strings keep a log record on one line: a pool handle
// with a newline and bytes that are not UTF-8 is logged as 0x-hex (as the
// admin API shows it), and a path with control characters escaped.
func TestLogEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"svc", "svc"},
		{"a\nb", `a\nb`},
		{"x\xffy", `x\xffy`},
		{"ü", "ü"},
		{`a\b`, `a\\b`},
	} {
		if got := escape(tc.in); got != tc.want {
			t.Errorf("escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	log, buf := sharedtest.BufferLogger(t, "registrar")
	log.SetLevel(hclog.Info)
	r := unitRegistrar(t, nil, func(r *Registrar) { r.log = log })
	ac, _ := peConn(t, r)
	pe := unitPE(1, asap.PolicyRoundRobin)
	pe.Lifetime = 0 // refused and logged with its pool
	const evil = asap.PoolHandle("pool\n2026-01-01T00:00:00Z [INFO] forged line\xff")
	r.register(context.Background(), ac, &asap.Registration{PoolHandle: evil, PoolElement: pe})
	out := buf.String()
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "registration refused") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no refusal logged:\n%s", out)
	}
	if strings.Contains(out, "forged line") || !strings.Contains(line, "pool=0x706f6f6c0a") {
		t.Fatalf("the pool handle was not escaped into the record's line:\n%s", out)
	}
}
