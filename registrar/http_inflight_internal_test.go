package registrar

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Ensure shutdown's wait for the admin API's handlers waits for one that
// is still running (a snapshot download whose grace period ended used to
// remove its spool file after the data dir was gone), refuses new
// requests once it began, and gives up at its bound.
func TestInflight_WaitsForRunningHandlers(t *testing.T) {
	f := newInflight()
	entered, release := make(chan struct{}), make(chan struct{})
	h := f.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		w.WriteHeader(http.StatusNoContent)
	}))
	go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/snapshot", nil))
	<-entered
	if f.closeAndWait(50 * time.Millisecond) {
		t.Fatal("closeAndWait reported no handler running while one was")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/status", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("a request after shutdown began: HTTP %d, want 503", rec.Code)
	}
	done := make(chan bool)
	go func() { done <- f.closeAndWait(time.Minute) }()
	select {
	case ok := <-done:
		t.Fatalf("closeAndWait returned %v before the handler ended", ok)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if !<-done {
		t.Error("closeAndWait did not see the handler end")
	}
}
