package transport_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/transport"
)

// benchOneWay sends b.N 100-byte ASAP-framed messages over TCP loopback,
// spread over conns connections (each with one sender and one receiver
// goroutine), and reports messages per second.
func benchOneWay(b *testing.B, conns int) {
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDASAP
	ctx := context.Background()
	l, err := transport.Listen(ctx, "tcp:127.0.0.1:0", cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	senders := make([]transport.Conn, conns)
	receivers := make([]transport.Conn, conns)
	for i := range senders {
		if senders[i], err = transport.Dial(ctx, "tcp:"+l.Addrs()[0].String(), cfg); err != nil {
			b.Fatal(err)
		}
		if receivers[i], err = l.Accept(ctx); err != nil {
			b.Fatal(err)
		}
	}
	defer func() {
		for i := range senders {
			senders[i].Close()
			receivers[i].Close()
		}
	}()
	msg := mkMsg(100, 1)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		n := b.N / conns
		if i < b.N%conns {
			n++
		}
		wg.Add(2)
		go func(c transport.Conn) {
			defer wg.Done()
			for k := 0; k < n; k++ {
				if err := c.Send(ctx, transport.PPIDASAP, msg); err != nil {
					b.Error(err)
					return
				}
			}
		}(senders[i])
		go func(c transport.Conn) {
			defer wg.Done()
			for k := 0; k < n; k++ {
				if _, _, err := c.Recv(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		}(receivers[i])
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

func BenchmarkTCPOneWay100B_1Conn(b *testing.B)  { benchOneWay(b, 1) }
func BenchmarkTCPOneWay100B_8Conns(b *testing.B) { benchOneWay(b, 8) }

// BenchmarkPipeOneWay100B measures the in-memory pipe for comparison.
func BenchmarkPipeOneWay100B(b *testing.B) {
	a, c := transport.Pipe()
	defer a.Close()
	defer c.Close()
	msg := mkMsg(100, 1)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for k := 0; k < b.N; k++ {
			if _, _, err := c.Recv(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	for k := 0; k < b.N; k++ {
		if err := a.Send(ctx, transport.PPIDASAP, msg); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
