package pu_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap/pe"
	"github.com/rserpool-go/registrar/asap/pu"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// exampleSetup runs a registrar and one echo PE of pool "echo" in this
// process, and returns the registrar's ASAP address and a function that
// stops everything.
func exampleSetup() (string, func()) {
	dir, err := os.MkdirTemp("", "pu-example")
	if err != nil {
		log.Fatal(err)
	}
	rcfg := registrartest.Config(dir)
	rcfg.Logger = hclog.NewNullLogger()
	r, err := registrar.New(rcfg)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-r.Ready()
	a := r.ASAPAddrs()[0]
	addr := a.Network() + ":" + a.String()

	srv, err := pe.Listen(ctx, "tcp:127.0.0.1:0", pe.DefaultServerConfig())
	if err != nil {
		log.Fatal(err)
	}
	cfg := pe.DefaultConfig()
	cfg.PoolHandle, cfg.ID, cfg.User, cfg.Registrars = "echo", 0x1001, srv.Transport(), []string{addr}
	el, err := pe.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := el.Register(ctx); err != nil {
		log.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		for {
			s, err := srv.Accept(ctx)
			if err != nil {
				return
			}
			go func() {
				defer s.Close()
				for {
					m, err := s.Recv(ctx)
					if err != nil {
						return
					}
					if m.Kind == pe.KindData && s.Send(ctx, m.PPID, m.Data) != nil {
						return
					}
				}
			}()
		}
	}()
	return addr, func() {
		el.Close()
		srv.Close()
		<-served
		cancel()
		<-done
		os.RemoveAll(dir)
	}
}

// Resolve a pool handle to its PEs.
func ExampleUser_Resolve() {
	registrarAddr, stop := exampleSetup()
	defer stop()
	cfg := pu.DefaultConfig()
	cfg.Registrars = []string{registrarAddr}
	u, err := pu.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer u.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	pes, err := u.Resolve(ctx, "echo")
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range pes {
		fmt.Printf("PE 0x%x %v %v policy %v\n", p.ID, p.User.Kind, p.User.Addrs, p.Policy.Type)
	}
	_, err = u.Resolve(ctx, "nosuchpool")
	fmt.Println("unknown pool:", errors.Is(err, pu.ErrUnknownPool))
	// Output:
	// PE 0x1001 tcp [127.0.0.1] policy rr
	// unknown pool: true
}

// Talk to a PE of pool "echo" with failover.
func ExampleUser_Connect() {
	registrarAddr, stop := exampleSetup()
	defer stop()
	cfg := pu.DefaultConfig()
	cfg.Registrars = []string{registrarAddr}
	u, err := pu.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer u.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	scfg := pu.DefaultSessionConfig()
	scfg.PPID = 38 // the application's payload protocol identifier
	scfg.OnFailover = func(f pu.Failover) {
		log.Printf("PE 0x%x failed (%v); now PE 0x%x, cookie echoed: %v", f.From, f.Reason, f.To, f.CookieEchoed)
	}
	s, err := u.Connect(ctx, "echo", scfg)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.Send(ctx, []byte("hello")); err != nil {
		log.Fatal(err)
	}
	ppid, reply, err := s.Recv(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("PE 0x%x answered %q (PPID %d)\n", s.PE().ID, reply, ppid)
	// Output: PE 0x1001 answered "hello" (PPID 38)
}
