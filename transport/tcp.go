package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// aLongTimeAgo is a deadline in the past: it makes blocked I/O return now.
var aLongTimeAgo = time.Unix(1, 0)

const (
	// initialReadBuf is the receive buffer of a TCP connection while it
	// holds unread bytes (taken from readBufPool; an idle connection holds
	// none); it grows to hold a larger frame.
	initialReadBuf = 4 << 10
	// sendQueueLimit bounds the bytes queued for the writer goroutine
	// (besides the batch it is writing); Send blocks beyond it.
	sendQueueLimit = 64 << 10
	// smallReadBuf is the receive buffer a plain TCP connection keeps in
	// itself for messages that fit (most ASAP messages do).
	smallReadBuf = 128
)

// sendBufPool recycles send batches across connections, so an idle
// connection holds no send buffer.
var sendBufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, sendQueueLimit)
	return &b
}}

// readBufPool recycles receive buffers of initialReadBuf bytes: a plain
// TCP connection takes one when the socket has data and gives it back once
// everything read is consumed, so an idle connection holds none.
var readBufPool = sync.Pool{New: func() any {
	b := make([]byte, initialReadBuf)
	return &b
}}

// tcpConn is a Conn over TCP: messages back to back, framed by the length
// in their own header (see frame.go). Sends are queued and written in
// batches by one writer goroutine per connection, owned by the connection
// and started when a Send first leaves something queued (a connection
// whose writes all go straight to the socket never has one).
type tcpConn struct {
	nc       net.Conn // a *net.TCPConn, or a *tls.Conn over one
	cfg      *Config  // shared by a listener's connections; never changed
	logOnce  sync.Once
	log      hclog.Logger // made by logger() on first use
	local    Endpoint
	remoteEP Endpoint

	// Reading; guarded by rsem (a one-slot semaphore that honours ctx).
	rsem    chan struct{}
	rbuf    []byte
	rbufp   *[]byte // rbuf came from readBufPool
	small   [smallReadBuf]byte
	rdMore  bool // readOnce is readMore's: never wait
	pooled  bool // plain TCP on a descriptor: rbuf is released when empty
	rr, rw  int  // unread bytes are rbuf[rr:rw]
	rdl     ioDeadline
	readErr error // final read error
	rd      rawReadState
	rdFunc  func(fd uintptr) bool // c.readOnce

	// Parking (see Parker).
	park          atomic.Pointer[parking] // set while parked
	parkReq       atomic.Bool             // RequestPark: the next wait returns ErrParked
	failed        atomic.Bool             // fail began (Park checks it after parking)
	parkIdle      time.Time               // the read timeout when Recv returned ErrParked (rsem)
	resumeTimeout time.Time               // set by the poller when the read timeout passed while parked

	// Writing.
	wmu     sync.Mutex
	raw     syscall.RawConn // for the direct, non-blocking write of Send
	dw      directWriteState
	dwFunc  func(fd uintptr) bool // c.writeOnce
	writing bool                  // a write is in progress (Send's direct write or the writer's)
	pending *[]byte               // frames queued for the writer; nil when none
	space   chan struct{}         // closed when the writer takes pending; nil if nobody waits
	werr    error                 // final error for Send
	wstart  sync.Once             // starts the writer (or, in fail, rules it out)
	w       *tcpWriter            // the writer's channels, set through wstart; nil if it never started
	wup     atomic.Bool           // the writer was started (for tests)

	failOnce  sync.Once
	closeOnce sync.Once
}

// tcpWriter holds the channels of a connection's writer goroutine, made
// when it starts: most connections never have one until they close, and
// four channels cost 384 bytes per connection.
type tcpWriter struct {
	kick    chan struct{} // wakes the writer (one slot)
	closing chan struct{} // closed by Close: flush, then exit
	dead    chan struct{} // closed by fail: exit now
	done    chan struct{} // closed when the writer has exited
}

var (
	_ Conn     = (*tcpConn)(nil)
	_ FastConn = (*tcpConn)(nil)
	_ Parker   = (*tcpConn)(nil)
)

func newTCPConn(nc net.Conn, cfg *Config) *tcpConn {
	c := &tcpConn{
		nc:       nc,
		cfg:      cfg,
		local:    tcpEndpoint(nc.LocalAddr()),
		remoteEP: tcpEndpoint(nc.RemoteAddr()),
		rsem:     make(chan struct{}, 1),
	}
	c.rdl.set = nc.SetReadDeadline
	if tc, ok := nc.(*net.TCPConn); ok {
		c.raw, _ = tc.SyscallConn() // TLS has no direct writes, pooled reads or TCP_INFO
	}
	c.pooled = c.raw != nil && rawReads
	c.dwFunc = c.writeOnce
	c.rdFunc = c.readOnce
	return c
}

// remoteAddr is the peer's address for errors and logs (made when needed:
// most connections never print it).
func (c *tcpConn) remoteAddr() string { return c.nc.RemoteAddr().String() }

// logger is the connection's logger, made on its first line: most
// connections never log.
func (c *tcpConn) logger() hclog.Logger {
	c.logOnce.Do(func() {
		kind := "tcp"
		if c.raw == nil {
			kind = "tls"
		}
		c.log = c.cfg.logger().With("transport", kind, "local", c.nc.LocalAddr().String(), "remote", c.remoteAddr())
	})
	return c.log
}

// startWriter starts the writer goroutine; run once, through wstart.
func (c *tcpConn) startWriter() {
	c.w = &tcpWriter{kick: make(chan struct{}, 1), closing: make(chan struct{}),
		dead: make(chan struct{}), done: make(chan struct{})}
	c.wup.Store(true)
	go c.writeLoop(c.w)
}

// wake makes the writer goroutine write what is queued, starting it the
// first time.
func (c *tcpConn) wake() {
	c.wstart.Do(c.startWriter)
	if c.w == nil {
		return // failed before the writer was needed: nothing is written
	}
	select {
	case c.w.kick <- struct{}{}:
	default:
	}
}

// Test hooks: testDirectWriteLimit (> 0) caps what one direct write
// takes, to force partial writes; testAfterDirectWrite runs after a direct
// write, before Send queues what is left (a concurrent Send fits there).
var (
	testDirectWriteLimit int
	testAfterDirectWrite func()
)

// directWrite tries to write b at once without blocking (the socket is
// non-blocking; the write is attempted once). It returns what the kernel
// did not take: all of b when its buffer is full, the tail after a
// partial write, nothing in the common case.
func (c *tcpConn) directWrite(b []byte) (rest []byte, err error) {
	if c.raw == nil {
		return b, nil
	}
	lim := len(b)
	if testDirectWriteLimit > 0 && testDirectWriteLimit < lim {
		lim = testDirectWriteLimit
	}
	c.dw = directWriteState{b: b[:lim]}
	cerr := c.raw.Write(c.dwFunc)
	n, err := c.dw.n, c.dw.err
	c.dw = directWriteState{}
	if err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("tcp send to %s: %w", c.remoteAddr(), err)
	}
	return b[n:], nil
}

// directWriteState is the state of the one direct write in progress (Send
// sets writing), kept in the connection so that the function given to
// RawConn.Write is made once per connection, not once per message.
type directWriteState struct {
	b   []byte
	n   int
	err error
}

// writeOnce is the RawConn.Write function of directWrite: one attempt.
func (c *tcpConn) writeOnce(fd uintptr) bool {
	d := &c.dw
	for d.n < len(d.b) {
		m, werr := rawWrite(fd, d.b[d.n:])
		if m > 0 {
			d.n += m
		}
		if werr == syscall.EINTR {
			continue
		}
		if werr != nil && werr != syscall.EAGAIN {
			d.err = werr
		}
		break
	}
	return true // never wait for writability here: the writer goroutine does
}

// Kind implements Conn.
func (c *tcpConn) Kind() Kind { return KindTCP }

// LocalAddr implements Conn.
func (c *tcpConn) LocalAddr() Endpoint { return c.local }

// RemoteAddr implements Conn.
func (c *tcpConn) RemoteAddr() Endpoint { return c.remoteEP }

// PeerAddrs implements Conn.
func (c *tcpConn) PeerAddrs() []netip.Addr { return append([]netip.Addr(nil), c.remoteEP.Addrs...) }

// Send implements Conn.
func (c *tcpConn) Send(ctx context.Context, ppid uint32, msg []byte) error {
	_, err := c.send(ctx, ppid, msg, true)
	return err
}

// TrySend implements FastConn.
func (c *tcpConn) TrySend(ppid uint32, msg []byte) (bool, error) {
	return c.send(context.Background(), ppid, msg, false)
}

// TrySendMore implements FastConn.
func (c *tcpConn) TrySendMore(ppid uint32, msg []byte, more bool) (bool, error) {
	fi, err := checkSend(ppid, msg, c.cfg.PPID, c.cfg.Mux, c.cfg.MaxMessageSize)
	if err != nil {
		return false, fmt.Errorf("tcp send to %s: %w", c.remoteAddr(), err)
	}
	size := len(msg)
	if fi.header {
		size += muxHeaderSize
	}
	c.wmu.Lock()
	if c.werr != nil {
		err := c.werr
		c.wmu.Unlock()
		return false, err
	}
	if !more && !c.writing && (c.pending == nil || len(*c.pending) == 0) {
		c.wmu.Unlock()
		return c.send(context.Background(), ppid, msg, false) // nothing held: TrySend's direct write
	}
	if c.pending == nil {
		c.pending = sendBufPool.Get().(*[]byte)
		*c.pending = (*c.pending)[:0]
	}
	if q := *c.pending; len(q) > 0 && len(q)+size > sendQueueLimit {
		c.wmu.Unlock()
		c.Flush()
		return false, nil
	}
	*c.pending = appendFrame(*c.pending, fi, msg)
	if more || c.writing {
		// Held until a call without more; or a write in progress takes it
		// when it is done (Send's direct write kicks the writer, the
		// writer loops until nothing is queued).
		c.wmu.Unlock()
		return true, nil
	}
	return true, c.writePendingLocked()
}

// Flush implements FastConn.
func (c *tcpConn) Flush() error {
	c.wmu.Lock()
	if c.werr != nil {
		err := c.werr
		c.wmu.Unlock()
		return err
	}
	if c.writing || c.pending == nil || len(*c.pending) == 0 {
		c.wmu.Unlock()
		return nil
	}
	return c.writePendingLocked()
}

// writePendingLocked writes what is queued with one direct write on this
// goroutine (c.wmu held, nobody writing; it unlocks c.wmu) and leaves what
// the socket did not take to the writer goroutine.
func (c *tcpConn) writePendingLocked() error {
	bp := c.pending
	c.pending = nil
	if c.space != nil {
		close(c.space)
		c.space = nil
	}
	c.writing = true
	c.wmu.Unlock()
	rest, err := c.directWrite(*bp)
	c.wmu.Lock()
	c.writing = false
	if err != nil {
		c.wmu.Unlock()
		sendBufPool.Put(bp)
		c.fail(err)
		return err
	}
	if len(rest) > 0 {
		nq := sendBufPool.Get().(*[]byte)
		*nq = append((*nq)[:0], rest...)
		if c.pending != nil {
			*nq = append(*nq, *c.pending...)
			sendBufPool.Put(c.pending)
		}
		c.pending = nq
	}
	kick := c.pending != nil && len(*c.pending) > 0
	c.wmu.Unlock()
	sendBufPool.Put(bp)
	if kick {
		c.wake()
	}
	return nil
}

// Buffered implements FastConn.
func (c *tcpConn) Buffered() bool {
	h, ok, err := parseFrame(c.rbuf[c.rr:c.rw], c.cfg.PPID, c.cfg.Mux, c.cfg.MaxMessageSize)
	return err == nil && ok && c.rw-c.rr >= h.total
}

// send is Send; without wait it returns false instead of waiting for
// room in the send queue.
func (c *tcpConn) send(ctx context.Context, ppid uint32, msg []byte, wait bool) (bool, error) {
	fi, err := checkSend(ppid, msg, c.cfg.PPID, c.cfg.Mux, c.cfg.MaxMessageSize)
	if err != nil {
		return false, fmt.Errorf("tcp send to %s: %w", c.remoteAddr(), err)
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	size := len(msg)
	if fi.header {
		size += muxHeaderSize
	}
	for {
		c.wmu.Lock()
		if c.werr != nil {
			err := c.werr
			c.wmu.Unlock()
			return false, err
		}
		if (c.pending == nil || len(*c.pending) == 0) && !c.writing {
			// Fast path: nothing queued, nobody writing. Write on this
			// goroutine without blocking; queue only what the socket did
			// not take (before anything queued meanwhile). No send buffer
			// is taken unless something is left to queue.
			c.writing = true
			frame := msg
			var fb *[]byte
			if fi.header {
				fb = sendBufPool.Get().(*[]byte)
				frame = appendFrame((*fb)[:0], fi, msg)
			}
			c.wmu.Unlock()
			rest, err := c.directWrite(frame)
			if testAfterDirectWrite != nil {
				testAfterDirectWrite()
			}
			c.wmu.Lock()
			c.writing = false
			if err != nil {
				c.wmu.Unlock()
				if fb != nil {
					sendBufPool.Put(fb)
				}
				c.fail(err)
				return false, err
			}
			if len(rest) > 0 {
				nq := sendBufPool.Get().(*[]byte)
				*nq = append((*nq)[:0], rest...)
				if c.pending != nil {
					*nq = append(*nq, *c.pending...)
					sendBufPool.Put(c.pending)
				}
				c.pending = nq
			}
			kick := c.pending != nil && len(*c.pending) > 0
			c.wmu.Unlock()
			if fb != nil {
				sendBufPool.Put(fb)
			}
			if kick {
				c.wake()
			}
			return true, nil
		}
		if c.pending == nil {
			c.pending = sendBufPool.Get().(*[]byte)
			*c.pending = (*c.pending)[:0]
		}
		if q := *c.pending; len(q) == 0 || len(q)+size <= sendQueueLimit {
			*c.pending = appendFrame(q, fi, msg)
			c.wmu.Unlock()
			c.wake()
			return true, nil
		}
		if !wait {
			c.wmu.Unlock()
			return false, nil
		}
		if c.space == nil {
			c.space = make(chan struct{})
		}
		space := c.space
		c.wmu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// writeLoop writes queued frames until the connection fails or is closed.
func (c *tcpConn) writeLoop(w *tcpWriter) {
	defer close(w.done)
	for {
		select {
		case <-w.kick:
			if !c.flush() {
				return
			}
		case <-w.closing:
			// Flush everything, including what a direct write in progress
			// leaves queued when it finishes.
			for c.flush() {
				c.wmu.Lock()
				busy := c.writing || (c.pending != nil && len(*c.pending) > 0)
				c.wmu.Unlock()
				if !busy {
					break
				}
				time.Sleep(time.Millisecond)
			}
			return
		case <-w.dead:
			return
		}
	}
}

// flush writes everything queued; it returns false after a write error.
func (c *tcpConn) flush() bool {
	for {
		c.wmu.Lock()
		if c.writing {
			// Send is writing directly; it kicks us again if it leaves
			// anything queued.
			c.wmu.Unlock()
			return true
		}
		bp := c.pending
		c.pending = nil
		if c.space != nil {
			close(c.space)
			c.space = nil
		}
		if bp != nil && len(*bp) > 0 {
			c.writing = true
		}
		c.wmu.Unlock()
		if bp == nil {
			return true
		}
		if len(*bp) == 0 {
			sendBufPool.Put(bp)
			return true
		}
		if c.cfg.WriteTimeout > 0 {
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
		}
		_, err := c.nc.Write(*bp)
		c.wmu.Lock()
		c.writing = false
		c.wmu.Unlock()
		if cap(*bp) <= 2*sendQueueLimit {
			sendBufPool.Put(bp)
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.logger().Warn("closing connection: peer does not read", "write_timeout", c.cfg.WriteTimeout)
				err = fmt.Errorf("tcp send to %s: peer stopped reading for %v: %w", c.remoteAddr(), c.cfg.WriteTimeout, err)
			} else {
				err = fmt.Errorf("tcp send to %s: %w", c.remoteAddr(), err)
			}
			c.fail(err)
			return false
		}
	}
}

// Recv implements Conn.
func (c *tcpConn) Recv(ctx context.Context) (uint32, []byte, error) {
	return c.recv(ctx, nil, false)
}

// RecvInto implements FastConn.
func (c *tcpConn) RecvInto(ctx context.Context, buf []byte) (uint32, []byte, error) {
	return c.recv(ctx, buf, true)
}

// recv is Recv; with into the message goes into buf[:0].
func (c *tcpConn) recv(ctx context.Context, buf []byte, into bool) (uint32, []byte, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	select {
	case c.rsem <- struct{}{}:
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	defer func() { <-c.rsem }()
	if c.readErr != nil {
		return 0, nil, c.readErr
	}
	var timeout time.Time // ReadTimeout deadline, set when Recv first blocks
	if !c.resumeTimeout.IsZero() {
		// The read timeout passed while the connection was parked.
		timeout, c.resumeTimeout = c.resumeTimeout, time.Time{}
	}
	for {
		h, ok, err := parseFrame(c.rbuf[c.rr:c.rw], c.cfg.PPID, c.cfg.Mux, c.cfg.MaxMessageSize)
		if err != nil {
			c.logger().Warn("closing connection: bad frame from peer", "error", err)
			return 0, nil, c.failRead(fmt.Errorf("tcp recv from %s: %w", c.remoteAddr(), err))
		}
		if ok && c.rw-c.rr >= h.total {
			var msg []byte
			if into {
				msg = append(buf[:0], c.rbuf[c.rr+h.skip:c.rr+h.total]...)
			} else {
				msg = make([]byte, h.total-h.skip)
				copy(msg, c.rbuf[c.rr+h.skip:c.rr+h.total])
			}
			c.rr += h.total
			if c.rr == c.rw {
				c.rr, c.rw = 0, 0
				c.releaseReadBuf()
			}
			return h.ppid, msg, nil
		}
		need := 4 + muxHeaderSize // enough to parse any header
		if ok {
			need = h.total
		}
		c.makeRoom(need)
		if c.cfg.ReadTimeout > 0 && timeout.IsZero() {
			timeout = time.Now().Add(c.cfg.ReadTimeout)
		}
		if err := c.fill(ctx, timeout); err != nil {
			if err == ErrParked {
				c.parkIdle = timeout
			}
			return 0, nil, err
		}
	}
}

// releaseReadBuf drops the receive buffer once nothing unread is in it
// (rr == rw == 0): a pooled one goes back to readBufPool, a larger one to
// the collector. Only plain TCP does; TLS reads block holding the buffer.
func (c *tcpConn) releaseReadBuf() {
	if !c.pooled {
		return
	}
	if c.rbufp != nil {
		readBufPool.Put(c.rbufp)
	}
	c.rbuf, c.rbufp = nil, nil
}

// makeRoom makes rbuf able to hold need bytes from rr on. With no buffer
// and a frame that fits the pooled size, plain TCP takes none here:
// readOnce takes one from readBufPool when the socket has data.
func (c *tcpConn) makeRoom(need int) {
	if c.rbuf == nil {
		if c.pooled && need <= len(c.small) {
			return // readOnce reads into c.small
		}
		c.takeReadBuf(need)
		return
	}
	if len(c.rbuf)-c.rr >= need && c.rw < len(c.rbuf) {
		return
	}
	n := c.rw - c.rr
	if len(c.rbuf) >= need && !c.inSmall() {
		copy(c.rbuf, c.rbuf[c.rr:c.rw])
	} else {
		// Grow; out of c.small as soon as it is full (a pipelining peer
		// sends more than it holds).
		old, oldp := c.rbuf[c.rr:c.rw], c.rbufp
		c.takeReadBuf(need)
		copy(c.rbuf, old)
		if oldp != nil {
			readBufPool.Put(oldp)
		}
	}
	c.rr, c.rw = 0, n
}

// takeReadBuf makes rbuf a new buffer of at least need bytes: a pooled
// one when that is large enough, else its own.
func (c *tcpConn) takeReadBuf(need int) {
	if c.pooled && need <= initialReadBuf {
		c.rbufp = readBufPool.Get().(*[]byte)
		c.rbuf = *c.rbufp
		return
	}
	c.rbuf, c.rbufp = make([]byte, max(initialReadBuf, need)), nil
}

// inSmall reports whether rbuf is c.small.
func (c *tcpConn) inSmall() bool {
	return c.rbufp == nil && len(c.rbuf) == len(c.small) && &c.rbuf[0] == &c.small[0]
}

// fill reads once from the socket into rbuf. It returns ctx.Err() when ctx
// ended (the connection stays usable) and a final error otherwise.
func (c *tcpConn) fill(ctx context.Context, timeout time.Time) error {
	disarm := c.rdl.arm(ctx, timeout)
	var n int
	var err error
	if c.pooled {
		n, err = c.rawRead()
	} else {
		n, err = c.nc.Read(c.rbuf[c.rw:])
	}
	disarm()
	c.rw += n
	if err == nil {
		if c.pooled && c.inSmall() && c.rw == len(c.small) {
			c.readMore()
		}
		return nil
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		timedOut, ctxErr := expired(ctx, timeout)
		if timedOut {
			c.logger().Info("closing connection: read idle timeout", "read_timeout", c.cfg.ReadTimeout)
			return c.failRead(fmt.Errorf("tcp recv from %s: no complete message within %v: %w", c.remoteAddr(), c.cfg.ReadTimeout, ErrReadTimeout))
		}
		if ctxErr == nil { // a stale deadline, or RequestPark's: read again or park
			c.rdl.stale()
			if c.parkReq.Swap(false) && c.rw == c.rr {
				return ErrParked
			}
		}
		return ctxErr
	case errors.Is(err, io.EOF):
		if c.rw > c.rr {
			c.logger().Warn("closing connection: peer closed inside a message", "buffered", c.rw-c.rr)
			return c.failRead(fmt.Errorf("tcp recv from %s: peer closed inside a message: %w", c.remoteAddr(), io.ErrUnexpectedEOF))
		}
		if c.cfg.logger().IsDebug() {
			c.logger().Debug("peer closed the connection")
		}
		return c.failRead(io.EOF)
	case errors.Is(err, net.ErrClosed):
		return c.failRead(c.sendErr())
	default:
		if c.cfg.logger().IsDebug() {
			c.logger().Debug("closing connection: read failed", "error", err)
		}
		return c.failRead(fmt.Errorf("tcp recv from %s: %w", c.remoteAddr(), err))
	}
}

// rawReadState is the outcome of the read in progress (rsem held), kept in
// the connection so that the function given to RawConn.Read is made once.
type rawReadState struct {
	n   int
	err error
}

// rawRead reads once into rbuf[rw:] as net.Conn.Read would, but waits for
// readability without a buffer: readOnce takes one from readBufPool only
// when the socket has data.
func (c *tcpConn) rawRead() (n int, err error) {
	c.rd = rawReadState{}
	if err = c.raw.Read(c.rdFunc); err == nil { // else deadline or closed, as from net.Conn.Read
		n, err = c.rd.n, c.rd.err
		switch {
		case err != nil:
			err = os.NewSyscallError("read", err)
		case n == 0:
			err = io.EOF
		}
	}
	c.rd = rawReadState{}
	if err != nil && c.rw == 0 {
		c.releaseReadBuf()
	}
	return n, err
}

// readMore moves what c.small holds (it filled up: the peer sent more, a
// pipelining client) to a pooled buffer and reads once more without
// waiting, so that the requests sent together are read together. An
// error or EOF is left for the next read.
func (c *tcpConn) readMore() {
	c.makeRoom(c.rw - c.rr + 1)
	c.rd = rawReadState{}
	c.rdMore = true
	_ = c.raw.Read(c.rdFunc)
	c.rdMore = false
	if c.rd.err == nil && c.rd.n > 0 {
		c.rw += c.rd.n
	}
	c.rd = rawReadState{}
}

// readOnce is the RawConn.Read function of rawRead: one read(2) attempt;
// false (wait for readability) when there is nothing to read, having given
// back a pooled buffer that holds nothing.
func (c *tcpConn) readOnce(fd uintptr) bool {
	if c.rbuf == nil {
		// Most ASAP messages fit (a resolution, a keep-alive ACK): no
		// pooled buffer taken and given back per message; makeRoom
		// moves to one when more arrives.
		c.rbuf = c.small[:]
	}
	for {
		m, err := rawReadFD(fd, c.rbuf[c.rw:])
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			if c.rdMore {
				return true // readMore does not wait
			}
			if c.rw == 0 {
				c.releaseReadBuf()
			}
			return false
		}
		if m > 0 {
			c.rd.n = m
		}
		c.rd.err = err
		return true
	}
}

// sendErr returns the error that ended the connection.
func (c *tcpConn) sendErr() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr == nil {
		return fmt.Errorf("tcp %s: %w", c.remoteAddr(), ErrClosed)
	}
	return c.werr
}

// failRead records a final read error and closes the connection. The caller
// holds rsem.
func (c *tcpConn) failRead(err error) error {
	c.readErr = err
	c.fail(err)
	return err
}

// fail makes err the error of later Sends (unless one is set), closes the
// socket and stops the writer. Safe to call from any goroutine, repeatedly.
func (c *tcpConn) fail(err error) {
	c.failOnce.Do(func() {
		c.failed.Store(true)
		if pk := c.park.Load(); pk != nil {
			pk.p.cancel(pk) // before the descriptor closes
		}
		c.wmu.Lock()
		if c.werr == nil {
			c.werr = err
		}
		if c.space != nil {
			close(c.space)
			c.space = nil
		}
		c.wmu.Unlock()
		c.wstart.Do(func() {}) // no writer from now on, if none yet
		if c.w != nil {
			close(c.w.dead)
		}
		_ = c.nc.Close()
	})
}

// RequestPark implements Parker.
func (c *tcpConn) RequestPark() {
	if !c.pooled || c.park.Load() != nil {
		return
	}
	c.parkReq.Store(true)
	_ = c.nc.SetReadDeadline(aLongTimeAgo) // a waiting Recv returns; Recv re-arms its own
}

// Park implements Parker.
func (c *tcpConn) Park(p *Poller, wake func()) bool {
	if p == nil || !c.pooled {
		return false
	}
	select {
	case c.rsem <- struct{}{}:
	default:
		return false // a Recv is in progress
	}
	defer func() { <-c.rsem }()
	if c.readErr != nil || c.rr != c.rw || c.failed.Load() {
		return false
	}
	c.parkReq.Store(false)
	perr := errPollerStopped
	// Inside Control the descriptor stays open (and its number unused
	// by another socket) even if Close runs meanwhile.
	if cerr := c.raw.Control(func(fd uintptr) { perr = p.park(c, int(fd), c.parkIdle, wake) }); cerr != nil || perr != nil {
		return false
	}
	if c.failed.Load() {
		// Closed while parking: fail did not see the parking; take it
		// off (Run wakes it, and its Recv reports the close).
		if pk := c.park.Load(); pk != nil {
			p.cancel(pk)
		}
	}
	return true
}

// Close implements Conn.
func (c *tcpConn) Close() error {
	c.closeOnce.Do(func() {
		c.wmu.Lock()
		if c.werr == nil {
			c.werr = fmt.Errorf("tcp send to %s: %w", c.remoteAddr(), ErrClosed)
		}
		c.wmu.Unlock()
		c.wstart.Do(c.startWriter) // it flushes what a direct write in progress leaves
		w := c.w
		if w == nil { // failed before: nothing to flush
			c.fail(fmt.Errorf("tcp %s: %w", c.remoteAddr(), ErrClosed))
			return
		}
		close(w.closing)
		if linger := c.cfg.lingerTimeout(); linger > 0 {
			t := time.NewTimer(linger)
			select {
			case <-w.done:
			case <-t.C:
				c.logger().Warn("closing connection: queued messages not flushed in time", "linger", linger)
			}
			t.Stop()
		}
		c.fail(fmt.Errorf("tcp %s: %w", c.remoteAddr(), ErrClosed))
		<-w.done
	})
	return nil
}
