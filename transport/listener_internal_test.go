package transport

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// closerFunc is an io.Closer.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// syncBuffer is a bytes.Buffer safe for the logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Ensure accepts failing with EMFILE between successes (at the
// descriptor limit, every closed connection lets one accept through and
// restarts the backoff) are warned of once, not once per failure, and
// that the listener goes on accepting.
func TestListener_AcceptFailureWarningRateLimited(t *testing.T) {
	const rounds = 10
	var out syncBuffer
	l := newListener(hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Debug}))
	closed := make(chan struct{})
	var (
		mu    sync.Mutex
		calls int
	)
	accept := func() (Conn, error) {
		mu.Lock()
		n := calls
		calls++
		mu.Unlock()
		if n >= 2*rounds {
			<-closed
			return nil, net.ErrClosed
		}
		if n%2 == 0 {
			return nil, fmt.Errorf("accept4: %w", syscall.EMFILE)
		}
		a, b := Pipe()
		b.Close()
		return a, nil
	}
	var once sync.Once
	l.add(closerFunc(func() error { once.Do(func() { close(closed) }); return nil }), Endpoint{}, accept)
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range rounds {
		c, err := l.Accept(ctx)
		if err != nil {
			t.Fatalf("accept %d of %d after EMFILE: %v", i+1, rounds, err)
		}
		c.Close()
	}
	if n := strings.Count(out.String(), "accept failed; retrying"); n != 1 {
		t.Errorf("%d warnings for %d failed accepts within %v, want 1:\n%s", n, rounds, acceptWarnEvery, out.String())
	}
}
