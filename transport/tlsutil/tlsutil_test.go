package tlsutil_test

import (
	"crypto/tls"
	"io"
	"strings"
	"testing"

	"github.com/rserpool-go/registrar/transport/tlsutil"
	"github.com/rserpool-go/registrar/transport/tlsutil/tlstest"
)

// serve accepts TLS connections with cfg and echoes one line on each.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// talk dials addr with cfg and echoes a byte: nil when the handshake and
// the echo worked.
func talk(addr string, cfg *tls.Config) (*tls.Conn, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{1}); err != nil {
		c.Close()
		return nil, err
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Ensure that the registrar port (ClientRegistrar) takes only registrar
// certificates of its CA, valid now, and that a registrar dialing checks
// the server the same way.
func TestStore_RegistrarPort(t *testing.T) {
	ca := tlstest.New(t, "cluster")
	other := tlstest.New(t, "other")
	srv := tlstest.Store(t, ca.Registrar("r1"))
	addr := serve(t, srv.ServerConfig(tlsutil.ClientRegistrar))

	cases := []struct {
		name  string
		files tlsutil.Files
		want  string // "" = accepted, else part of the error
	}{
		{"registrar of the CA", ca.Registrar("r2"), ""},
		{"no certificate", tlsutil.Files{CA: ca.File}, "certificate"},
		{"client certificate of the CA", ca.Client("cli"), "certificate"},
		{"expired certificate", ca.Expired("old"), "certificate"},
		{"foreign CA", other.Registrar("intruder"), "certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.files
			f.CA = ca.File // the dialer trusts the server: the server decides
			cli := tlstest.Store(t, f)
			c, err := talk(addr, cli.PeerClientConfig())
			if c != nil {
				c.Close()
			}
			if tc.want == "" && err != nil {
				t.Fatalf("got %v, want accepted", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("got %v, want refused (%q)", err, tc.want)
			}
		})
	}

	t.Run("server of a foreign CA", func(t *testing.T) {
		fake := tlstest.Store(t, other.Registrar("fake"))
		faddr := serve(t, fake.ServerConfig(tlsutil.ClientRegistrar))
		cli := tlstest.Store(t, ca.Registrar("r3"))
		if c, err := talk(faddr, cli.PeerClientConfig()); err == nil {
			c.Close()
			t.Fatal("a registrar accepted a server with a certificate of a foreign CA")
		}
	})
}

// Ensure that a reload makes new handshakes use the new certificate and
// that a session established before goes on.
func TestStore_Reload(t *testing.T) {
	ca := tlstest.New(t, "cluster")
	first, second := ca.Registrar("first"), ca.Registrar("second")
	srv := tlstest.Store(t, first)
	addr := serve(t, srv.ServerConfig(tlsutil.ClientOptional))
	cli := tlstest.Store(t, tlsutil.Files{CA: ca.File})

	old, err := talk(addr, cli.ClientConfig("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if got := old.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "first" {
		t.Fatalf("before the reload the server presented %q, want first", got)
	}
	if err := srv.Reload(tlsutil.Files{Cert: "/nonexistent", Key: second.Key}); err == nil {
		t.Fatal("reload of a missing file succeeded")
	}
	if err := srv.Reload(second); err != nil {
		t.Fatal(err)
	}
	c, err := talk(addr, cli.ClientConfig("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "second" {
		t.Fatalf("after the reload the server presented %q, want second", got)
	}
	// The old session still works.
	if _, err := old.Write([]byte{2}); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := io.ReadFull(old, b[:]); err != nil || b[0] != 2 {
		t.Fatalf("the session from before the reload: got %v %v, want the echo", b, err)
	}
}

// Ensure that a client checks the server's host name against the
// certificate.
func TestStore_ClientChecksHostName(t *testing.T) {
	ca := tlstest.New(t, "cluster")
	srv := tlstest.Store(t, ca.Issue("web", tlsutil.CertOptions{Hosts: []string{"admin.example"}}))
	addr := serve(t, srv.ServerConfig(tlsutil.ClientOptional))
	cli := tlstest.Store(t, tlsutil.Files{CA: ca.File})
	if c, err := talk(addr, cli.ClientConfig("127.0.0.1")); err == nil {
		c.Close()
		t.Fatal("a certificate for admin.example was accepted for 127.0.0.1")
	}
	c, err := talk(addr, cli.ClientConfig("admin.example"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestLoad_Errors(t *testing.T) {
	ca := tlstest.New(t, "cluster")
	f := ca.Registrar("r")
	for _, tc := range []struct {
		name  string
		files tlsutil.Files
		want  string
	}{
		{"cert without key", tlsutil.Files{Cert: f.Cert}, "tls_key_file"},
		{"key of another cert", tlsutil.Files{Cert: f.Cert, Key: ca.Registrar("x").Key}, f.Cert},
		{"CA is a key", tlsutil.Files{CA: f.Key}, "no PEM certificate"},
		{"missing CA", tlsutil.Files{CA: "/nonexistent/ca.pem"}, "/nonexistent/ca.pem"},
	} {
		if _, err := tlsutil.Load(tc.files); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
}

// Ensure verify_outgoing off lets a registrar dial a server it cannot
// verify (still over TLS, still presenting its certificate), and on
// refuses it.
func TestStore_VerifyOutgoingOff(t *testing.T) {
	ca := tlstest.New(t, "cluster")
	other := tlstest.New(t, "other")
	srv := tlstest.Store(t, other.Registrar("elsewhere"))
	addr := serve(t, srv.ServerConfig(tlsutil.ClientOptional))
	cli := tlstest.Store(t, ca.Registrar("r1"))
	if c, err := talk(addr, cli.PeerClientConfig()); err == nil {
		c.Close()
		t.Fatal("a server of another CA was accepted with verify_outgoing on")
	}
	cli.SetVerifyOutgoing(false)
	c, err := talk(addr, cli.PeerClientConfig())
	if err != nil {
		t.Fatalf("verify_outgoing off: %v", err)
	}
	defer c.Close()
	if !c.ConnectionState().HandshakeComplete {
		t.Fatal("not TLS")
	}
}
