package registrar_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
)

// Packet captures that cannot miss the start or the end of a scenario: a
// capture tool only proves it captures by capturing something, so a
// marker datagram (to the loopback's discard port, where nothing listens)
// is sent until it shows up in the file, before the scenario starts and
// again after it ended.

// markerPort is the UDP port marker datagrams go to; capture filters
// include markerFilter.
const (
	markerPort   = 9
	markerFilter = "udp port 9"
)

// captureMarker is the payload of a marker datagram.
func captureMarker(what, test string) []byte {
	return []byte("rsp-capture-" + what + " " + test)
}

// markedCapture is a running capture tool writing file.
type markedCapture struct {
	t      testing.TB
	file   string
	cmd    *exec.Cmd
	stderr sharedtest.Buffer
	exited chan error
	sock   net.PacketConn
	done   bool
}

// startMarkedCapture runs argv (tcpdump or tshark writing file, with a
// filter that includes markerFilter) and returns once the start marker is
// in the file. stop must be called (it sends the end marker).
func startMarkedCapture(t testing.TB, file string, argv ...string) *markedCapture {
	t.Helper()
	c := &markedCapture{t: t, file: file, exited: make(chan error, 1)}
	c.cmd = exec.Command(argv[0], argv[1:]...)
	c.cmd.Stderr = &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", argv[0], err)
	}
	go func() { c.exited <- c.cmd.Wait() }()
	sock, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		c.cmd.Process.Kill()
		<-c.exited
		t.Fatal(err)
	}
	c.sock = sock
	if err := c.mark("start"); err != nil {
		c.kill()
		t.Fatalf("capture: %v", err)
	}
	t.Cleanup(c.kill) // stop not called: the test failed early
	return c
}

// mark sends the marker datagram until it is in the file.
func (c *markedCapture) mark(what string) error {
	msg := captureMarker(what, c.t.Name())
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: markerPort}
	const wait = 30 * time.Second
	deadline := time.Now().Add(wait)
	for {
		select {
		case err := <-c.exited:
			c.exited <- err
			return fmt.Errorf("%s exited (%v) before the %s marker was captured: %s", c.cmd.Path, err, what, c.stderr.String())
		default:
		}
		c.sock.WriteTo(msg, to) // nothing listens: only the capture sees it
		if b, err := os.ReadFile(c.file); err == nil && bytes.Contains(b, msg) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the %s marker datagram is not in %s after %v (%s: %s)", what, c.file, wait, c.cmd.Path, c.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends the end marker, waits for it in the file (everything sent
// before it is captured too) and stops the tool. Idempotent.
func (c *markedCapture) stop() error {
	if c.done {
		return nil
	}
	err := c.mark("end")
	c.kill()
	return err
}

func (c *markedCapture) kill() {
	if c.done {
		return
	}
	c.done = true
	c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
	c.sock.Close()
}
