package pe_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap/pe"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// exampleRegistrar runs a registrar in this process for the examples and
// returns its ASAP address and a function that stops it.
func exampleRegistrar() (string, func()) {
	dir, err := os.MkdirTemp("", "pe-example")
	if err != nil {
		log.Fatal(err)
	}
	cfg := registrartest.Config(dir)
	cfg.Logger = hclog.NewNullLogger()
	r, err := registrar.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-r.Ready()
	a := r.ASAPAddrs()[0]
	return a.Network() + ":" + a.String(), func() { cancel(); <-done; os.RemoveAll(dir) }
}

// A PE of pool "echo": the service listens, the element registers it and
// answers the registrar; each session echoes what it gets.
func ExampleElement() {
	registrarAddr, stop := exampleRegistrar()
	defer stop()
	ctx := context.Background()

	srv, err := pe.Listen(ctx, "tcp:127.0.0.1:0", pe.DefaultServerConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	cfg := pe.DefaultConfig()
	cfg.PoolHandle = "echo"
	cfg.ID = 0x1001
	cfg.User = srv.Transport()
	cfg.Registrars = []string{registrarAddr}
	el, err := pe.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer el.Close() // deregisters
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := el.Register(rctx); err != nil {
		log.Fatal(err) // a *pe.RegistrationError says what to change
	}
	fmt.Printf("PE 0x%x registered in pool %s\n", el.ID(), el.PoolHandle())

	go func() {
		for {
			s, err := srv.Accept(ctx)
			if err != nil {
				return // closed
			}
			go echo(ctx, s)
		}
	}()
	// Output: PE 0x1001 registered in pool echo
}

// echo serves one pool user: it answers each message with itself and a
// cookie, and notes a cookie echoed after a failover.
func echo(ctx context.Context, s *pe.Session) {
	defer s.Close()
	served := uint32(0)
	for {
		m, err := s.Recv(ctx)
		if err != nil {
			return
		}
		switch m.Kind {
		case pe.KindCookieEcho:
			log.Printf("session continues from a cookie: %x", m.Data)
		case pe.KindData:
			served++
			if err := s.Send(ctx, m.PPID, m.Data); err != nil {
				return
			}
			// The state the next PE needs, a multiple of 4 bytes long.
			_ = s.SendCookie(ctx, []byte{byte(served >> 24), byte(served >> 16), byte(served >> 8), byte(served)})
		}
	}
}
