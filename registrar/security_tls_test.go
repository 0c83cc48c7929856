package registrar_test

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
	"github.com/rserpool-go/registrar/transport/tlsutil"
	"github.com/rserpool-go/registrar/transport/tlsutil/tlstest"
)

func withTLS(f tlsutil.Files) func(*registrar.Config) {
	return func(c *registrar.Config) {
		c.TLSCertFile, c.TLSKeyFile, c.TLSCAFile = f.Cert, f.Key, f.CA
	}
}

// httpsClient trusts ca and presents the client certificate of f (none
// when f has no Cert); keep-alives on, so a test can watch one session.
func httpsClient(t *testing.T, ca string, f tlsutil.Files) *http.Client {
	t.Helper()
	f.CA = ca
	st := tlstest.Store(t, f)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: st.ClientConfig("127.0.0.1")}}
}

// Ensure that with TLS and verify_incoming the admin API answers only
// HTTPS clients with a client certificate of the CA: plain HTTP, no
// certificate, an expired one and one of a foreign CA are refused; a
// valid one is answered.
func TestTLS_AdminAPI_VerifyIncoming(t *testing.T) {
	ca := tlstest.New(t, "cluster")
	foreign := tlstest.New(t, "foreign")
	r := registrartest.Start(t, "", func(c *registrar.Config) {
		withTLS(ca.Registrar("r1"))(c)
		c.VerifyIncoming = true
	})
	url := "https://" + r.HTTPAddr() + "/v1/status"

	resp, err := http.Get("http://" + r.HTTPAddr() + "/v1/status")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP was answered with 200")
		}
	}
	for _, tc := range []struct {
		name  string
		files tlsutil.Files
	}{
		{"no client certificate", tlsutil.Files{}},
		{"expired client certificate", ca.Expired("old")},
		{"client certificate of a foreign CA", foreign.Client("intruder")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := httpsClient(t, ca.File, tc.files).Get(url)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got %s, want the TLS handshake refused", resp.Status)
			}
		})
	}
	resp, err = httpsClient(t, ca.File, ca.Client("cli")).Get(url)
	if err != nil {
		t.Fatalf("a client certificate of the CA: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a client certificate of the CA: got %s, want 200", resp.Status)
	}
}

// Ensure that a reload with new certificate files makes new handshakes
// present the new certificate while a session established before goes
// on, and that a reload with a broken file changes nothing.
func TestTLS_ReloadKeepsSessions(t *testing.T) {
	ca := tlstest.New(t, "cluster")
	files := ca.Registrar("first")
	r := registrartest.Start(t, "", withTLS(files))
	url := "https://" + r.HTTPAddr() + "/v1/status"
	old := httpsClient(t, ca.File, tlsutil.Files{})
	get := func(c *http.Client) string {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body) // the session stays open for the next request
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	if cn := get(old); cn != "first" {
		t.Fatalf("before the reload: certificate %q, want first", cn)
	}

	// A broken file: the reload fails, nothing changes.
	second := ca.Registrar("second")
	next := r.Config()
	next.TLSCertFile = second.Cert // with first's key
	if _, err := r.Reload(next); err == nil {
		t.Fatal("a reload with a certificate that does not match its key succeeded")
	}
	// The same names, new contents.
	for _, p := range [][2]string{{second.Cert, files.Cert}, {second.Key, files.Key}} {
		b, err := os.ReadFile(p[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Reload(r.Config()); err != nil {
		t.Fatal(err)
	}
	if cn := get(old); cn != "first" {
		t.Fatalf("the session from before the reload now shows %q: it was not kept", cn)
	}
	if cn := get(httpsClient(t, ca.File, tlsutil.Files{})); cn != "second" {
		t.Fatalf("a new session after the reload: certificate %q, want second", cn)
	}
}

// Ensure that a registrar whose certificate comes from a foreign CA
// cannot join a TLS cluster: gossip may see it, but the leader does not
// make it a voter (its raft port fails our handshake, and ours fails its),
// and the cluster keeps its two voters; a registrar of the cluster's CA
// joins.
func TestTLS_ForeignCACannotJoin(t *testing.T) {
	ca := tlstest.New(t, "cluster")
	foreign := tlstest.New(t, "foreign")
	log, logs := sharedtest.BufferLogger(t, "registrar")
	nodes := registrartest.StartCluster(t, 2, func(c *registrar.Config) {
		withTLS(ca.Registrar("member"))(c)
		c.Logger = log
	})
	seed := nodes[0].Handlespace().GossipAddr()
	intruderFiles := foreign.Registrar("intruder")
	intruderFiles.CA = ca.File // it even trusts our CA: its certificate is what counts
	registrartest.Start(t, "", func(c *registrar.Config) {
		withTLS(intruderFiles)(c)
		c.Join = []string{seed}
	})
	logs.Wait(t, "the leader refusing the intruder as a voter", regexp.MustCompile(`not adding registrar as raft voter`), 20*time.Second)
	for _, n := range nodes {
		servers, err := n.Handlespace().Servers()
		if err != nil || len(servers) != 2 {
			t.Fatalf("raft has %d servers (%v), want the 2 members", len(servers), err)
		}
	}
	third := registrartest.Start(t, "", func(c *registrar.Config) {
		withTLS(ca.Registrar("member3"))(c)
		c.Join = []string{seed}
	})
	waitValue(t, 20*time.Second, "the member of the CA as a voter", func() int {
		servers, _ := third.Handlespace().Servers()
		return len(servers)
	}, 3)
}

// Ensure the agent refuses to start with the admin API, raft or gossip on
// a non-loopback address without TLS, tokens or a gossip key, naming the
// key; insecure allows it, and TLS with tokens and a key is enough.
func TestSafeDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // "" = valid
	}{
		{"admin API on the wildcard", []string{"-http", "0.0.0.0:8863"}, "http: the admin API on 0.0.0.0:8863"},
		{"admin API with TLS but no tokens", []string{"-http", "10.0.0.5:8863", "-tls-cert-file", "c", "-tls-key-file", "k", "-tls-ca-file", "ca"}, "needs TLS (tls_cert_file, tls_key_file, tls_ca_file) and tokens"},
		{"raft on a LAN address", []string{"-raft", "10.0.0.5:7947"}, "raft: the raft port on 10.0.0.5:7947"},
		{"raft advertised on a LAN address", []string{"-raft-advertise", "10.0.0.5:7947"}, "raft_advertise: the raft port"},
		{"gossip without a key", []string{"-gossip", "10.0.0.5:7946"}, "encrypt: gossip on 10.0.0.5:7946"},
		{"loopback", nil, ""},
		{"insecure", []string{"-http", "0.0.0.0:8863", "-raft", "10.0.0.5:7947", "-gossip", "10.0.0.5:7946", "-insecure"}, ""},
		{"protected", []string{"-http", "0.0.0.0:8863", "-raft", "10.0.0.5:7947", "-gossip", "10.0.0.5:7946",
			"-tls-cert-file", "c", "-tls-key-file", "k", "-tls-ca-file", "ca", "-http-tokens-file", "t", "-encrypt", "MTIzNDU2Nzg5MDEyMzQ1Ng=="}, ""},
		{"half of the TLS files", []string{"-tls-cert-file", "c"}, "tls_key_file: missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := registrar.ParseAgentArgs(tc.args)
			if tc.want == "" && err != nil {
				t.Fatalf("got %v, want valid", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// Ensure a registrar started with insecure on a non-loopback address
// says so at WARN.
func TestSafeDefaults_InsecureWarns(t *testing.T) {
	log, logs := sharedtest.BufferLogger(t, "registrar")
	registrartest.Start(t, "", func(c *registrar.Config) {
		c.HTTP = "0.0.0.0:0"
		c.Insecure = true
		c.Logger = log
	})
	logs.Wait(t, "the insecure warning", regexp.MustCompile(`\[WARN\] .*insecure: anyone who reaches these ports.*admin API without TLS on 0.0.0.0:0`), 5*time.Second)
}
