package registrar_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/registrar/registrartest"
	"github.com/rserpool-go/registrar/transport/tlsutil/tlstest"
)

// Ensure, with the built binaries, that a 3-registrar cluster with TLS
// everywhere it has (HTTPS admin API, mutual TLS raft and forwarded
// writes) and tokens forms, replicates and is driven by the CLI over
// HTTPS with tokens: without a token or with a read token the operator
// commands are refused and change nothing; the operator token saves a
// snapshot; rsp serve and rsp resolve work over ASAP over TLS (and not
// without the CA).
func TestE2E_SecureCluster(t *testing.T) {
	registrartest.BinDir(t)
	ca := tlstest.New(t, "cluster")
	tokens := writeTokens(t)
	base := t.TempDir()
	gossip := make([]string, 3)
	for i := range gossip {
		gossip[i] = fmt.Sprintf("127.0.0.1:%d", registrartest.FreePort(t))
	}
	asapTLS := make([]string, 3)
	for i := range asapTLS {
		asapTLS[i] = fmt.Sprintf("127.0.0.1:%d", registrartest.FreePort(t))
	}
	done := make(chan *registrartest.Agent, 3)
	for i := 0; i < 3; i++ {
		f := ca.Registrar(fmt.Sprintf("r%d", i+1))
		args := []string{"-gossip", gossip[i], "-asap-tls", asapTLS[i], "-join", strings.Join(gossip, ","), "-bootstrap-expect", "3",
			"-tls-cert-file", f.Cert, "-tls-key-file", f.Key, "-tls-ca-file", f.CA, "-http-tokens-file", tokens,
			"-encrypt", "MTIzNDU2Nzg5MDEyMzQ1Ng=="}
		dir := filepath.Join(base, fmt.Sprintf("r%d", i+1))
		go func() { done <- registrartest.StartAgent(t, dir, args...) }()
	}
	var agents []*registrartest.Agent
	for i := 0; i < 3; i++ {
		a := <-done
		a.CLIEnv = []string{"REGISTRAR_CA_FILE=" + ca.File, "REGISTRAR_HTTP_TOKEN=" + operatorSecret}
		agents = append(agents, a)
	}
	c := &e2eCluster{t: t, agents: agents}
	c.waitVoters(3, agents...)

	// Replication over mutual TLS: a registration at one registrar
	// resolves at the others.
	t.Run("replicated", func(t *testing.T) {
		cl := dialAddr(t, agents[0].ASAP, true)
		mustRegister(t, cl, "svc", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
		for _, a := range agents[1:] {
			pu := dialAddr(t, a.ASAP, false)
			waitFor(t, 10*time.Second, "the PE at "+a.HTTP, func() bool {
				r := resolve(t, pu, "svc", 1)
				return r.Error == nil && len(r.PEs) == 1
			})
		}
	})

	// rsp serve and rsp resolve over ASAP over TLS, at different
	// registrars.
	rsp := filepath.Join(registrartest.BinDir(t), "rsp")
	serve := registrartest.StartProcess(t, "rsp serve over TLS", rsp, "serve", "-registrar", "tls:"+asapTLS[0], "-tls-ca-file", ca.File,
		"-pool", "tlspool", "-listen", "tcp:127.0.0.1:0")
	serve.WaitLine(0, "pe registered", 20*time.Second)
	waitFor(t, 20*time.Second, "rsp resolve over TLS at another registrar to find the PE", func() bool {
		out, err := exec.Command(rsp, "resolve", "-registrar", "tls:"+asapTLS[2], "-tls-ca-file", ca.File, "-timeout", "5s", "tlspool").CombinedOutput()
		return err == nil && strings.Contains(string(out), "tcp")
	})
	if out, err := exec.Command(rsp, "resolve", "-registrar", "tls:"+asapTLS[2], "-timeout", "5s", "tlspool").CombinedOutput(); err == nil {
		t.Fatalf("rsp resolve over TLS without the cluster's CA succeeded:\n%s", out)
	}

	a := agents[1]
	run := func(env []string, args ...string) (string, error) {
		saved := a.CLIEnv
		a.CLIEnv = env
		defer func() { a.CLIEnv = saved }()
		return a.CLI(args...)
	}
	caEnv := "REGISTRAR_CA_FILE=" + ca.File
	if out, err := run([]string{caEnv}, "status"); err == nil || !strings.Contains(out, "missing token") {
		t.Fatalf("status without a token: %v\n%s\nwant refused: missing token", err, out)
	}
	if out, err := run(nil, "status"); err == nil {
		t.Fatalf("status without the CA (plain HTTP to an HTTPS API): %s\nwant an error", out)
	}
	id := strings.TrimPrefix(c.status(agents[2]).ID, "0x")
	if out, err := run([]string{caEnv, "REGISTRAR_HTTP_TOKEN=" + readSecret}, "raft", "remove-peer", id); err == nil || !strings.Contains(out, "needs role operator") {
		t.Fatalf("raft remove-peer with the read token: %v\n%s\nwant refused: needs role operator", err, out)
	}
	if out, err := run([]string{caEnv, "REGISTRAR_HTTP_TOKEN=" + readSecret}, "leave"); err == nil || !strings.Contains(out, "needs role operator") {
		t.Fatalf("leave with the read token: %v\n%s\nwant refused", err, out)
	}
	c.waitVoters(3, agents...)
	if out, err := run([]string{caEnv, "REGISTRAR_HTTP_TOKEN=" + readSecret}, "status"); err != nil || !strings.Contains(out, "2 PEs") {
		t.Fatalf("status with the read token: %v\n%s", err, out)
	}
	// The gossip keyring through the CLI: a change reaches every
	// registrar over HTTPS with the caller's token.
	if out, err := a.CLI("keyring", "install", "YWJjZGVmZ2hpamtsbW5vcA=="); err != nil || !strings.Contains(out, "done at 3 of 3 registrars") {
		t.Fatalf("keyring install: %v\n%s", err, out)
	}
	if out, err := agents[2].CLI("keyring", "list"); err != nil || strings.Count(out, "false")+strings.Count(out, "true") != 2 {
		t.Fatalf("keyring list at another registrar: %v\n%s\nwant two keys", err, out)
	}
	snap := filepath.Join(t.TempDir(), "h.snap")
	if out, err := a.CLI("snapshot", "save", snap); err != nil || !strings.Contains(out, "2 PEs") {
		t.Fatalf("snapshot save with the operator token (proxied to the leader over HTTPS): %v\n%s", err, out)
	}
}
