package transport_test

import (
	"context"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/transport"
	"github.com/rserpool-go/registrar/transport/tlsutil"
	"github.com/rserpool-go/registrar/transport/tlsutil/tlstest"
)

// Ensure a tls: listener and dialer carry messages over TLS with the
// certificate checked, and refuse a client that does not trust the
// server, a plain TCP client, and a tls: address without a configuration.
func TestTLS_ListenDial(t *testing.T) {
	ca := tlstest.New(t, "cluster")
	other := tlstest.New(t, "other")
	srv := tlstest.Store(t, ca.Registrar("registrar"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDASAP
	if _, err := transport.Listen(ctx, "tls:127.0.0.1:0", cfg); err == nil {
		t.Fatal("a tls: listener without a TLS configuration started")
	}
	lcfg := cfg
	lcfg.TLS = srv.ServerConfig(tlsutil.ClientOptional)
	ln, err := transport.Listen(ctx, "tls:127.0.0.1:0", lcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := "tls:" + ln.Addrs()[0].String()
	go func() {
		for {
			c, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					ppid, m, err := c.Recv(ctx)
					if err != nil {
						return
					}
					_ = c.Send(ctx, ppid, m)
				}
			}()
		}
	}()

	dcfg := cfg
	dcfg.TLS = tlstest.Store(t, tlsutil.Files{CA: ca.File}).ClientConfig("")
	c, err := transport.Dial(ctx, addr, dcfg)
	if err != nil {
		t.Fatal(err)
	}
	hello, err := asap.Pack(&asap.HandleResolution{PoolHandle: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, transport.PPIDASAP, hello); err != nil {
		t.Fatal(err)
	}
	if _, m, err := c.Recv(ctx); err != nil || string(m) != string(hello) {
		t.Fatalf("echo over TLS: got %q, %v", m, err)
	}
	c.Close()

	bad := cfg
	bad.TLS = tlstest.Store(t, tlsutil.Files{CA: other.File}).ClientConfig("")
	if c, err := transport.Dial(ctx, addr, bad); err == nil {
		c.Close()
		t.Fatal("a client trusting another CA completed the handshake")
	}
	plain, err := transport.Dial(ctx, "tcp:"+ln.Addrs()[0].String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	_ = plain.Send(ctx, transport.PPIDASAP, hello)
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	if _, m, err := plain.Recv(rctx); err == nil {
		t.Fatalf("a plain TCP client got an answer from the TLS listener: %q", m)
	}
}
