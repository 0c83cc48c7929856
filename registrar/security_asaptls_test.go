package registrar_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
	"github.com/rserpool-go/registrar/transport"
	"github.com/rserpool-go/registrar/transport/tlsutil"
	"github.com/rserpool-go/registrar/transport/tlsutil/tlstest"
)

// dialTLS connects an ASAP client over TLS with cfg (nil error: the
// handshake completed).
func dialTLS(t *testing.T, addr string, cfg *tls.Config) (*client, error) {
	t.Helper()
	tc := transport.DefaultConfig()
	tc.PPID = transport.PPIDASAP
	tc.TLS = cfg
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := transport.Dial(ctx, addr, tc)
	if err != nil {
		return nil, err
	}
	cl := &client{t: t, c: c, acks: true, in: make(chan asap.Message, 64), ka: make(chan *asap.EndpointKeepAlive, 64)}
	go cl.readLoop()
	t.Cleanup(func() { c.Close() })
	return cl, nil
}

// Ensure ASAP over TLS (asap_tls) serves PEs and PUs that trust the CA,
// and with verify_incoming refuses clients without a client certificate
// of the CA, with an expired one or one of a foreign CA; plain ASAP on
// the other port goes on.
func TestASAPOverTLS(t *testing.T) {
	ca := tlstest.New(t, "cluster")
	foreign := tlstest.New(t, "foreign")
	r := registrartest.Start(t, "", func(c *registrar.Config) {
		withTLS(ca.Registrar("r1"))(c)
		c.ASAPTLS = "127.0.0.1:0"
		c.VerifyIncoming = true
	})
	addr := r.ASAPTLSAddr()
	cfgOf := func(f tlsutil.Files) *tls.Config {
		f.CA = ca.File
		return tlstest.Store(t, f).ClientConfig("")
	}
	pe, err := dialTLS(t, addr, cfgOf(ca.Client("pe")))
	if err != nil {
		t.Fatalf("a PE with a client certificate of the CA: %v", err)
	}
	mustRegister(t, pe, "svc", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	pu, err := dialTLS(t, addr, cfgOf(ca.Client("pu")))
	if err != nil {
		t.Fatal(err)
	}
	if res := resolve(t, pu, "svc", 0); len(res.PEs) != 1 {
		t.Fatalf("resolution over TLS: %+v", res)
	}
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"no client certificate", cfgOf(tlsutil.Files{})},
		{"expired client certificate", cfgOf(ca.Expired("old"))},
		{"client certificate of a foreign CA", cfgOf(foreign.Client("intruder"))},
		{"a client that does not trust the registrar", tlstest.Store(t, tlsutil.Files{CA: foreign.File}).ClientConfig("")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := dialTLS(t, addr, tc.cfg)
			if err != nil {
				return // refused in the handshake
			}
			b, _ := asap.Pack(&asap.Deregistration{PoolHandle: "svc", ID: 1})
			_ = cl.c.Send(context.Background(), transport.PPIDASAP, b) // may fail: the server refused the certificate
			select {
			case m, ok := <-cl.in:
				if ok {
					t.Fatalf("%s: the registrar answered %v", tc.name, m.Type())
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: the connection was neither refused nor closed", tc.name)
			}
		})
	}
	plain := dial(t, r, false)
	if res := resolve(t, plain, "svc", 0); len(res.PEs) != 1 {
		t.Fatalf("plain ASAP beside TLS: %+v", res)
	}
}

// Ensure the ENRP TLS listener (enrp_tls) admits only registrar
// certificates of the CA (a client certificate, an expired one, one of a
// foreign CA and none are refused, and their update changes nothing), and
// that a registrar coming in over it is an
// accepted peer although neither configured nor from an accepted
// network: its HANDLE_UPDATE enters the handlespace.
func TestENRPOverTLS_AcceptsCertifiedPeers(t *testing.T) {
	ca := tlstest.New(t, "federation")
	a := registrartest.Start(t, "", func(c *registrar.Config) {
		fastPeering(c)
		c.ENRPPeerNetworks = nil
		withTLS(ca.Registrar("a"))(c)
		c.ENRPTLS = "127.0.0.1:0"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dialWith := func(f tlsutil.Files) (transport.Conn, error) {
		cfg := enrpConfig()
		f.CA = ca.File
		cfg.TLS = tlstest.Store(t, f).PeerClientConfig()
		return transport.Dial(ctx, a.ENRPTLSAddr(), cfg)
	}
	const peerID = 0x00c0ffee
	foreign := tlstest.New(t, "foreign")
	foreignFiles := foreign.Registrar("intruder")
	for _, tc := range []struct {
		name  string
		files tlsutil.Files
	}{
		{"a client certificate of the CA", ca.Client("cli")},
		{"an expired registrar certificate", ca.Expired("old")},
		{"a registrar certificate of a foreign CA", tlsutil.Files{Cert: foreignFiles.Cert, Key: foreignFiles.Key}},
		{"no certificate", tlsutil.Files{}},
	} {
		c, err := dialWith(tc.files)
		if err != nil {
			continue // refused in the handshake
		}
		sendENRP(t, c, &enrp.HandleUpdate{Header: enrp.Header{Sender: peerID, Receiver: a.ID()}, Action: enrp.AddPE, PoolHandle: "nope",
			PoolElement: foreignPE(0x99, peerID, "127.0.0.1")})
		if _, _, err := c.Recv(ctx); err == nil {
			t.Fatalf("%s completed the ENRP TLS handshake and was answered", tc.name)
		}
		c.Close()
	}
	c, err := dialWith(ca.Registrar("b"))
	if err != nil {
		t.Fatalf("a registrar certificate of the CA: %v", err)
	}
	defer c.Close()
	sendENRP(t, c, &enrp.Presence{Header: enrp.Header{Sender: peerID, Receiver: a.ID()}, ServerInfo: asap.ServerInfo{ID: peerID,
		Transport: asap.Transport{Kind: asap.ParamTCPTransport, Port: 9, Addrs: c.LocalAddr().Addrs}}})
	sendENRP(t, c, &enrp.HandleUpdate{Header: enrp.Header{Sender: peerID, Receiver: a.ID()}, Action: enrp.AddPE, PoolHandle: "fed",
		PoolElement: foreignPE(0x77, peerID, "127.0.0.1")})
	waitValue(t, 10*time.Second, "the certified peer's PE in the handlespace", func() int { return len(a.Handlespace().Pool("fed")) }, 1)
	if pes := a.Handlespace().Pool("nope"); len(pes) > 0 {
		t.Fatalf("the client certificate's update was applied: %+v", pes)
	}
}

// Ensure two registrars of different clusters with certificates of one
// CA peer over ENRP over TLS: one names the other's enrp_tls address as
// its static peer, the other neither configures it nor accepts its
// network, and PEs go both ways.
func TestENRPOverTLS_Peering(t *testing.T) {
	ca := tlstest.New(t, "federation")
	a := registrartest.Start(t, "", func(c *registrar.Config) {
		fastPeering(c)
		c.ENRPPeerNetworks = nil
		withTLS(ca.Registrar("a"))(c)
		c.ENRPTLS = "127.0.0.1:0"
	})
	b := registrartest.Start(t, "", func(c *registrar.Config) {
		fastPeering(c)
		c.ENRPPeerNetworks = nil
		withTLS(ca.Registrar("b"))(c)
		c.ENRPPeers = []string{a.ENRPTLSAddr()}
	})
	clA, clB := dial(t, a, true), dial(t, b, true)
	mustRegister(t, clA, "pool", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	mustRegister(t, clB, "pool", testPE(2, 7002, asap.Policy{Type: asap.PolicyRoundRobin}))
	waitValue(t, 20*time.Second, "A's PE at B", func() int { return len(b.Handlespace().Owned(a.ID())) }, 1)
	waitValue(t, 20*time.Second, "B's PE at A", func() int { return len(a.Handlespace().Owned(b.ID())) }, 1)
}
