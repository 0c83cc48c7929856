package sharedtest

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer collects output written from several goroutines (a logger, a
// command's stdout and stderr) for a test that reads it meanwhile. The
// zero Buffer is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Contains polls until the output contains substr, for at most d, and
// reports whether it did.
func (b *Buffer) Contains(substr string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !strings.Contains(b.String(), substr) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// Wait polls until re matches the output and returns the match; after d
// it fails t with what (the thing waited for) and the output.
func (b *Buffer) Wait(t testing.TB, what string, re *regexp.Regexp, d time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v; output:\n%s", what, d, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
