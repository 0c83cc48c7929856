//go:build unix

package registrar_test

import (
	"encoding/json"
	"net/http"
	"syscall"
	"testing"

	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// Ensure a registrar raises its open file limit to the hard limit at
// start and reports it in /v1/status.
func TestStatus_OpenFileLimit(t *testing.T) {
	r := registrartest.Start(t, "", nil)
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	if l.Cur != l.Max {
		t.Errorf("open file limit %d after the start, hard limit %d", l.Cur, l.Max)
	}
	resp, err := http.Get("http://" + r.HTTPAddr() + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st registrar.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.FDLimit != uint64(l.Cur) {
		t.Errorf("status fd_limit %d, want the limit %d", st.FDLimit, l.Cur)
	}
}
