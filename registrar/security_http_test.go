package registrar_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// Secrets of the test tokens.
const (
	readSecret     = "read-secret-0123456789"
	writeSecret    = "write-secret-0123456789"
	operatorSecret = "operator-secret-0123456789"
)

// writeTokens writes a tokens file with a read, a write and an operator
// token and returns its path.
func writeTokens(t testing.TB) string {
	t.Helper()
	f := registrar.TokensFile{Tokens: []registrar.TokenEntry{
		{Name: "reader", Role: "read", Secret: readSecret},
		{Name: "writer", Role: "write", Secret: writeSecret},
		{Name: "ops", Role: "operator", Secret: operatorSecret},
	}}
	b, _ := json.Marshal(f)
	p := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// adminCall makes one admin API request and returns the status and body.
func adminCall(t testing.TB, client *http.Client, method, url string, hdr map[string]string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func bearer(secret string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + secret, "Content-Type": "application/json"}
}

// stillServing fails the test unless the registrar answers ASAP
// resolutions from an unchanged handlespace (pool "svc" with one PE) and
// is a raft voter alone.
func stillServing(t *testing.T, r *testRegistrar) {
	t.Helper()
	select {
	case <-r.Ready():
	default:
		t.Fatal("the registrar is not running")
	}
	pu := dial(t, r, false)
	resp := resolve(t, pu, "svc", 0)
	if resp.Error != nil || len(resp.PEs) != 1 || resp.PEs[0].ID != 1 {
		t.Fatalf("after the refused request the pool svc resolves to %+v (error %v), want the one PE 00000001", resp.PEs, resp.Error)
	}
	servers, err := r.Handlespace().Servers()
	if err != nil || len(servers) != 1 {
		t.Fatalf("after the refused request raft has %d servers (%v), want 1", len(servers), err)
	}
}

// Ensure that with a tokens file every admin route needs a token of its
// role: none or an unknown one gets 401, too low a role 403, each with a
// JSON error that names what is missing, and the handlespace and the
// membership stay as they were; the operator token does what it may; the
// refusals and the accepted destructive calls are logged with the token's
// name and never its secret.
func TestAdminAPI_Tokens(t *testing.T) {
	log, logs := sharedtest.BufferLogger(t, "registrar")
	r := registrartest.Start(t, "", func(c *registrar.Config) {
		c.HTTPTokensFile = writeTokens(t)
		c.EnableDebug = true
		c.Logger = log
	})
	pe := dial(t, r, true)
	mustRegister(t, pe, "svc", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	base := "http://" + r.HTTPAddr()
	snap, err := os.ReadFile(filepath.Join(r.Dir, "registrar-id")) // any bytes
	if err != nil {
		t.Fatal(err)
	}
	var apiErr registrar.APIError
	cases := []struct {
		name, method, path string
		hdr                map[string]string
		body               []byte
		code               int
		want               string // in the JSON error
	}{
		{"status without a token", "GET", "/v1/status", nil, nil, 401, "missing token"},
		{"status with an unknown token", "GET", "/v1/status", bearer("not-a-token-0123456789"), nil, 401, "unknown token"},
		{"status with a malformed header", "GET", "/v1/status", map[string]string{"Authorization": "Basic eDp5"}, nil, 401, "Bearer"},
		{"leave with the read token", "POST", "/v1/leave", bearer(readSecret), nil, 403, `token "reader" has role read: POST /v1/leave needs role operator`},
		{"leave with the write token", "POST", "/v1/leave", bearer(writeSecret), nil, 403, "needs role operator"},
		{"leave without a token", "POST", "/v1/leave", map[string]string{"Content-Type": "application/json"}, nil, 401, "missing token"},
		{"snapshot upload with the write token", "PUT", "/v1/snapshot", bearer(writeSecret), snap, 403, "needs role operator"},
		{"snapshot download with the read token", "GET", "/v1/snapshot", bearer(readSecret), nil, 403, "needs role operator"},
		{"raft peer removal with the read token", "DELETE", "/v1/raft/peers/" + fmt.Sprintf("%08x", r.ID()), bearer(readSecret), nil, 403, "needs role operator"},
		{"pprof with the read token", "GET", "/debug/pprof/cmdline", bearer(readSecret), nil, 403, "needs role operator"},
		{"metrics without a token", "GET", "/metrics", nil, nil, 401, "missing token"},
		{"the change stream without a token", "GET", "/v1/watch", nil, nil, 401, "missing token"},
		{"a blocking query without a token", "GET", "/v1/pools/svc?index=1&wait=1s", nil, nil, 401, "missing token"},
		{"ENRP peers without a token", "GET", "/v1/enrp/peers", nil, nil, 401, "missing token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := adminCall(t, http.DefaultClient, tc.method, base+tc.path, tc.hdr, bytes.NewReader(tc.body))
			if code != tc.code {
				t.Fatalf("got %d %s, want %d", code, body, tc.code)
			}
			if err := json.Unmarshal([]byte(body), &apiErr); err != nil || !strings.Contains(apiErr.Error, tc.want) {
				t.Fatalf("got the body %s, want a JSON error containing %q", body, tc.want)
			}
			stillServing(t, r)
		})
	}
	for _, ok := range []struct{ path, secret string }{
		{"/v1/status", readSecret}, {"/v1/pools", readSecret}, {"/v1/members", readSecret}, {"/metrics", readSecret},
		{"/v1/snapshot", operatorSecret}, {"/debug/pprof/cmdline", operatorSecret}, {"/v1/enrp/peers", readSecret},
	} {
		if code, body := adminCall(t, http.DefaultClient, "GET", base+ok.path, bearer(ok.secret), nil); code != 200 {
			t.Errorf("GET %s with a token of its role: got %d %s, want 200", ok.path, code, body)
		}
	}
	// The change stream with the read token; the dashboard's own files
	// need none (the data the page reads does).
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/watch", nil)
	req.Header.Set("Authorization", "Bearer "+readSecret)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Errorf("GET /v1/watch with the read token: %v", err)
	} else {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || line != "event: "+registrar.EventReady+"\n" {
			t.Errorf("GET /v1/watch with the read token: %d, first line %q, want 200 and stream.ready", resp.StatusCode, line)
		}
	}
	if code, _ := adminCall(t, http.DefaultClient, "GET", base+"/ui/", nil, nil); code != http.StatusOK {
		t.Errorf("GET /ui/ without a token: %d, want the page (200)", code)
	}
	logs.Wait(t, "the refusal logged with the token's name", regexp.MustCompile(`admin request refused: .*method=POST path=/v1/leave who=token:reader`), 5*time.Second)
	logs.Wait(t, "the accepted snapshot download logged", regexp.MustCompile(`admin request accepted: .*method=GET path=/v1/snapshot who=token:ops`), 5*time.Second)
	for _, s := range []string{readSecret, writeSecret, operatorSecret} {
		if strings.Contains(logs.String(), s) {
			t.Fatalf("a token's secret is in the log")
		}
	}
	// The operator may make it leave.
	if code, body := adminCall(t, http.DefaultClient, "POST", base+"/v1/leave", bearer(operatorSecret), nil); code != http.StatusAccepted {
		t.Fatalf("leave with the operator token: got %d %s, want 202", code, body)
	}
	logs.Wait(t, "the registrar shutting down", regexp.MustCompile(`shutting down: .*leave=true`), 10*time.Second)
}

// Ensure that requests a browser could send from another site are
// refused and change nothing: a text/plain POST /v1/leave with a foreign
// Origin (no CORS preflight), a form POST without an Origin, a JSON POST
// or a DELETE with a foreign Origin; and that the CLI's kind of request
// (JSON, no Origin) still works.
func TestAdminAPI_CrossSiteRefused(t *testing.T) {
	log, logs := sharedtest.BufferLogger(t, "registrar")
	r := registrartest.Start(t, "", func(c *registrar.Config) { c.Logger = log }) // loopback, no tokens
	pe := dial(t, r, true)
	mustRegister(t, pe, "svc", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	base := "http://" + r.HTTPAddr()
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		want               string
	}{
		{"text/plain leave from another site", "POST", "/v1/leave", map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}, "cross-site request refused"},
		{"form leave without an Origin", "POST", "/v1/leave", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "needs a token or a Content-Type"},
		{"leave without a content type", "POST", "/v1/leave", nil, "needs a token or a Content-Type"},
		{"JSON leave from another site", "POST", "/v1/leave", map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, "cross-site request refused"},
		{"leave with Sec-Fetch-Site cross-site", "POST", "/v1/leave", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, "cross-site"},
		{"raft peer removal from another site", "DELETE", "/v1/raft/peers/" + fmt.Sprintf("%08x", r.ID()), map[string]string{"Origin": "null"}, "cross-site request refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := adminCall(t, http.DefaultClient, tc.method, base+tc.path, tc.hdr, strings.NewReader("x"))
			if code != http.StatusForbidden || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %s, want 403 with %q", code, body, tc.want)
			}
			stillServing(t, r)
		})
	}
	logs.Wait(t, "the cross-site refusal logged", regexp.MustCompile(`admin request refused: .*method=POST path=/v1/leave who=anonymous .*origin=http://evil.example`), 5*time.Second)
	same := map[string]string{"Content-Type": "application/json", "Origin": "http://" + r.HTTPAddr()}
	if code, body := adminCall(t, http.DefaultClient, "POST", base+"/v1/leave", same, nil); code != http.StatusAccepted {
		t.Fatalf("a same-origin JSON leave: got %d %s, want 202", code, body)
	}
}

// endless is a body of random bytes that counts what was read.
type endless struct {
	n     atomic.Int64
	limit int64
}

func (e *endless) Read(p []byte) (int, error) {
	n := e.n.Load()
	if n >= e.limit {
		return 0, io.EOF
	}
	if int64(len(p)) > e.limit-n {
		p = p[:e.limit-n]
	}
	rand.Read(p)
	e.n.Add(int64(len(p)))
	return len(p), nil
}

// spoolFiles lists the upload spool files in the data dir.
func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, ".snapshot-*"))
	return m
}

// Ensure that a snapshot upload is refused on its header before anything
// is spooled (200 MB of garbage are not read, let alone stored), and
// above max_snapshot_size with and without a Content-Length; the
// handlespace is unchanged each time, and a real snapshot still restores.
func TestSnapshotUpload_HeaderAndSizeChecked(t *testing.T) {
	r := registrartest.Start(t, "", func(c *registrar.Config) { c.MaxSnapshotSize = 1 << 20 })
	pe := dial(t, r, true)
	mustRegister(t, pe, "svc", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	url := "http://" + r.HTTPAddr() + "/v1/snapshot"
	good := getSnapshot(t, r.HTTPAddr())
	oct := map[string]string{"Content-Type": "application/octet-stream"}

	t.Run("200 MB of garbage", func(t *testing.T) {
		body := &endless{limit: 200 << 20}
		req, _ := http.NewRequest("PUT", url, body)
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "not a snapshot") {
				t.Fatalf("got %d %s, want 400: not a snapshot", resp.StatusCode, b)
			}
		}
		if n := body.n.Load(); n > 16<<20 {
			t.Fatalf("the registrar read %d bytes of garbage before refusing it, want it to stop at the header", n)
		}
		if f := spoolFiles(t, r.Dir); len(f) > 0 {
			t.Fatalf("garbage was spooled to %v", f)
		}
		stillServing(t, r)
	})
	t.Run("too large with Content-Length", func(t *testing.T) {
		big := append(append([]byte{}, good...), make([]byte, 2<<20)...)
		code, body := adminCall(t, http.DefaultClient, "PUT", url, oct, bytes.NewReader(big))
		if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "max_snapshot_size") {
			t.Fatalf("got %d %s, want 413 naming max_snapshot_size", code, body)
		}
		stillServing(t, r)
	})
	t.Run("too large without Content-Length", func(t *testing.T) {
		big := io.MultiReader(bytes.NewReader(good), &endless{limit: 2 << 20})
		code, body := adminCall(t, http.DefaultClient, "PUT", url, oct, io.NopCloser(big))
		if code != http.StatusRequestEntityTooLarge {
			t.Fatalf("got %d %s, want 413", code, body)
		}
		if f := spoolFiles(t, r.Dir); len(f) > 0 {
			t.Fatalf("the refused upload left %v", f)
		}
		stillServing(t, r)
	})
	t.Run("a real snapshot", func(t *testing.T) {
		code, body := putSnapshot(t, r.HTTPAddr(), good)
		if code != http.StatusOK {
			t.Fatalf("restore of a real snapshot: got %d %s, want 200", code, body)
		}
		stillServing(t, r)
	})
}
