package registrar

import (
	"net/http"
	"sync"
	"time"
)

// inflight counts the admin API's running handlers, so that shutdown
// waits for them before the handlespace and the data dir go away: a
// handler outlives http.Server.Shutdown when its grace period ends (a
// snapshot download on a busy machine), and http.Server.Close does not
// wait for handlers at all. Once closed, new requests get 503.
type inflight struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   chan struct{} // closed when closed and n is 0
}

func newInflight() *inflight { return &inflight{idle: make(chan struct{})} }

// wrap counts h's calls.
func (f *inflight) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			writeError(w, http.StatusServiceUnavailable, "the registrar is shutting down")
			return
		}
		f.n++
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			if f.n--; f.n == 0 && f.closed {
				close(f.idle)
			}
			f.mu.Unlock()
		}()
		h.ServeHTTP(w, req)
	})
}

// closeAndWait refuses new requests and waits, up to d, until no handler
// runs; it reports whether none does. The caller has closed the server's
// connections first (their handlers then see their request's context
// end).
func (f *inflight) closeAndWait(d time.Duration) bool {
	f.mu.Lock()
	if !f.closed {
		f.closed = true
		if f.n == 0 {
			close(f.idle)
		}
	}
	f.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-f.idle:
		return true
	case <-t.C:
		return false
	}
}
