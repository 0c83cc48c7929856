package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/store"
	"github.com/rserpool-go/registrar/transport/tlsutil"
)

// The raft port carries two kinds of connections, told apart by their
// first byte: raft's own RPCs, and writes forwarded by followers to the
// leader (raft does not forward). One port to open in firewalls, one
// address in the gossip metadata.
const (
	connRaft    byte = 'R'
	connForward byte = 'F'
)

// muxLayer is a raft.StreamLayer that hands raft its connections and
// serves forwarded writes itself.
type muxLayer struct {
	ln      net.Listener
	tls     *tlsutil.Store // nil: plain TCP
	adv     net.Addr
	raftCh  chan net.Conn
	serve   func(net.Conn)
	log     hclog.Logger
	closed  chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	connsMu sync.Mutex
	conns   map[net.Conn]struct{}
	open    atomic.Int64 // connections accepted on the raft port and not closed
}

var _ raft.StreamLayer = (*muxLayer)(nil)

// maxRaftPortConns caps the connections accepted on the raft port (raft's
// pooled and pipelined RPC connections from every peer, forwarded writes,
// and connections still to send their first byte): beyond it a new
// connection is closed at once. Without it a flood of connections that
// never send a byte took every file descriptor of the process, and the
// ASAP, ENRP and admin ports stopped accepting (EMFILE). It is well inside
// the descriptors the ASAP and ENRP connection cap leaves free.
const maxRaftPortConns = 128

// acceptWarnEvery is the least time between two warnings of the raft
// port's accept loop.
const acceptWarnEvery = 10 * time.Second

// countedConn is a raft port connection that leaves the count when it is
// closed (by raft, the forward server or the classifier).
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// admit counts an accepted connection, or refuses it at the cap. (The
// count has no lock: Close closes connections under connsMu.)
func (m *muxLayer) admit(c net.Conn) (net.Conn, bool) {
	if m.open.Add(1) > maxRaftPortConns {
		m.open.Add(-1)
		return nil, false
	}
	return &countedConn{Conn: c, release: func() { m.open.Add(-1) }}, true
}

func newMuxLayer(bind string, adv net.Addr, tlsStore *tlsutil.Store, log hclog.Logger) (*muxLayer, error) {
	ln, err := listenRaft(bind, tlsStore)
	if err != nil {
		return nil, err
	}
	if adv == nil {
		adv = ln.Addr()
		if ta := adv.(*net.TCPAddr); ta.IP.IsUnspecified() {
			ln.Close()
			return nil, fmt.Errorf("raft bind %s is a wildcard address: set an advertise address", bind)
		}
	}
	m := &muxLayer{ln: ln, tls: tlsStore, adv: adv, raftCh: make(chan net.Conn), log: log, closed: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	m.wg.Add(1)
	go m.acceptLoop()
	return m, nil
}

func (m *muxLayer) acceptLoop() {
	defer m.wg.Done()
	// One warning per acceptWarnEvery for failed accepts and one for
	// refusals, each with the count of those since the last one.
	var failWarned, refuseWarned time.Time
	var failed, refused int
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			if failed++; failWarned.IsZero() || time.Since(failWarned) >= acceptWarnEvery {
				m.log.Warn("raft port accept failed", "error", err, "failures", failed)
				failWarned, failed = time.Now(), 0
			}
			t := time.NewTimer(50 * time.Millisecond)
			select {
			case <-t.C:
			case <-m.closed:
				t.Stop()
				return
			}
			continue
		}
		cc, ok := m.admit(c)
		if !ok {
			c.Close()
			if refused++; refuseWarned.IsZero() || time.Since(refuseWarned) >= acceptWarnEvery {
				m.log.Warn("raft port connection refused: limit reached", "remote", c.RemoteAddr().String(), "limit", maxRaftPortConns, "refused", refused)
				refuseWarned, refused = time.Now(), 0
			}
			continue
		}
		m.wg.Add(1)
		go m.classify(cc)
	}
}

// classify reads the first byte and routes the connection.
func (m *muxLayer) classify(c net.Conn) {
	defer m.wg.Done()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		m.refused(c, err)
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	switch b[0] {
	case connRaft:
		select {
		case m.raftCh <- c:
		case <-m.closed:
			c.Close()
		}
	case connForward:
		if m.serve == nil || !m.track(c) {
			c.Close()
			return
		}
		defer m.untrack(c)
		m.serve(c)
	default:
		m.log.Warn("unknown connection type on the raft port", "remote", c.RemoteAddr(), "byte", b[0])
		c.Close()
	}
}

// track records a forwarded-write connection for Close to close. It
// refuses once Close has begun: Close would not see the connection, and
// its wait for the serving goroutine would never end.
func (m *muxLayer) track(c net.Conn) bool {
	m.connsMu.Lock()
	defer m.connsMu.Unlock()
	select {
	case <-m.closed:
		return false
	default:
	}
	m.conns[c] = struct{}{}
	return true
}

func (m *muxLayer) untrack(c net.Conn) {
	m.connsMu.Lock()
	defer m.connsMu.Unlock()
	delete(m.conns, c)
}

// Accept gives raft its next connection.
func (m *muxLayer) Accept() (net.Conn, error) {
	select {
	case c := <-m.raftCh:
		return c, nil
	case <-m.closed:
		return nil, errors.New("raft transport closed")
	}
}

// Close stops accepting and closes forwarded-write connections.
func (m *muxLayer) Close() error {
	m.once.Do(func() {
		close(m.closed)
		m.ln.Close()
		m.connsMu.Lock()
		for c := range m.conns {
			c.Close()
		}
		m.connsMu.Unlock()
	})
	m.wg.Wait()
	return nil
}

// Addr is the advertised address.
func (m *muxLayer) Addr() net.Addr { return m.adv }

// Dial opens a raft connection.
func (m *muxLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return dialKind(string(address), timeout, connRaft, m.tls)
}

func dialKind(addr string, timeout time.Duration, kind byte, tlsStore *tlsutil.Store) (net.Conn, error) {
	c, err := dialRaft(addr, timeout, tlsStore)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// forwardReply is the leader's answer to a forwarded write.
type forwardReply struct {
	Index     uint64          `json:"index"`
	Err       string          `json:"err,omitempty"`
	Retryable bool            `json:"retryable,omitempty"` // not the leader, no leader, shutting down
	Results   []forwardResult `json:"results,omitempty"`
}

type forwardResult struct {
	Err     string `json:"err,omitempty"`
	Kind    string `json:"kind,omitempty"` // which store sentinel
	Changed int    `json:"changed,omitempty"`
	// Op is the ASAP Operation Error of a refused PE (what the leader's
	// store decided), so the follower answers the PE with it.
	Op *asap.OperationError `json:"op,omitempty"`
}

var storeErrKinds = map[string]error{
	"pool_not_found":        store.ErrPoolNotFound,
	"pe_not_found":          store.ErrPENotFound,
	"policy_mismatch":       store.ErrPolicyMismatch,
	"transport_mismatch":    store.ErrTransportMismatch,
	"data_control_mismatch": store.ErrDataControlMismatch,
	"invalid_pe":            store.ErrInvalidPE,
}

// remoteError carries a store error across the forward so errors.Is works
// for the sentinel and errors.As finds the Operation Error of a refusal.
type remoteError struct {
	msg  string
	kind error
	op   *asap.OperationError
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.op != nil {
		errs = append(errs, e.op)
	}
	return errs
}

// encodeResult turns a store result into its forwarded form.
func encodeResult(r store.Result) forwardResult {
	fr := forwardResult{Changed: r.Changed}
	if r.Err == nil {
		return fr
	}
	fr.Err = r.Err.Error()
	for k, v := range storeErrKinds {
		if errors.Is(r.Err, v) {
			fr.Kind = k
		}
	}
	var oe *asap.OperationError
	if errors.As(r.Err, &oe) {
		fr.Op = oe
	}
	return fr
}

// decodeResult is the inverse of encodeResult.
func decodeResult(fr forwardResult) store.Result {
	r := store.Result{Changed: fr.Changed}
	if fr.Err != "" {
		r.Err = &remoteError{msg: fr.Err, kind: storeErrKinds[fr.Kind], op: fr.Op}
	}
	return r
}

// serveForward answers forwarded writes on one connection: a 4-byte
// length and the command, answered by a 4-byte length and JSON.
func (n *Node) serveForward(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		size := binary.BigEndian.Uint32(hdr[:])
		if size == 0 { // no command: the leader asks for our raft status (autopilot.go)
			if n.writeStatus(c) != nil {
				return
			}
			continue
		}
		if size&batchFlag != 0 { // several commands (forward_batch.go)
			if err := n.serveBatch(c, r, size&^batchFlag); err != nil {
				n.log.Warn("forwarded batch failed", "remote", c.RemoteAddr(), "error", err)
				return
			}
			continue
		}
		if size > 1<<20 {
			n.log.Warn("forwarded write too large", "remote", c.RemoteAddr(), "bytes", size)
			return
		}
		data := make([]byte, size)
		if _, err := io.ReadFull(r, data); err != nil {
			return
		}
		rep := n.applyForwarded(data)
		out, _ := json.Marshal(rep)
		binary.BigEndian.PutUint32(hdr[:], uint32(len(out)))
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(append(hdr[:], out...)); err != nil {
			return
		}
	}
}

// applyForwarded proposes a forwarded command and gives its answer.
func (n *Node) applyForwarded(data []byte) forwardReply {
	var rep forwardReply
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Raft.ApplyTimeout)
	res, idx, err := n.applyLocal(ctx, data, n.cfg.Raft.ApplyTimeout)
	cancel()
	rep.Index = idx
	if err != nil {
		rep.Err = err.Error()
		rep.Retryable = retryable(err)
		return rep
	}
	if res.Err != nil {
		rep.Err = res.Err.Error()
	}
	for _, r := range res.Results {
		rep.Results = append(rep.Results, encodeResult(r))
	}
	return rep
}

// forwardPool keeps idle connections to the leader for forwarded writes.
type forwardPool struct {
	// dial opens a forwarded-write connection to a node's raft address
	// (TCP with the connForward byte, or an in-memory pipe).
	dial func(addr string, timeout time.Duration) (net.Conn, error)

	mu   sync.Mutex
	idle map[string][]net.Conn
}

func (p *forwardPool) get(addr string) (net.Conn, error) {
	p.mu.Lock()
	if cs := p.idle[addr]; len(cs) > 0 {
		c := cs[len(cs)-1]
		p.idle[addr] = cs[:len(cs)-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	return p.dial(addr, 5*time.Second)
}

func (p *forwardPool) put(addr string, c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.idle == nil {
		p.idle = map[string][]net.Conn{}
	}
	if len(p.idle[addr]) >= 64 {
		c.Close()
		return
	}
	p.idle[addr] = append(p.idle[addr], c)
}

func (p *forwardPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cs := range p.idle {
		for _, c := range cs {
			c.Close()
		}
	}
	p.idle = nil
}

// forwardToLeader sends a command to the leader and waits for its answer.
func (n *Node) forwardToLeader(ctx context.Context, data []byte) (*ApplyResult, uint64, error) {
	addr, _ := n.raft.LeaderWithID()
	if addr == "" {
		return nil, 0, ErrNoLeader
	}
	c, err := n.fwd.get(string(addr))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: dial leader %s: %v", errForwardFailed, addr, err)
	}
	ok := false
	defer func() {
		if ok {
			n.fwd.put(string(addr), c)
		} else {
			c.Close()
		}
	}()
	deadline := time.Now().Add(n.cfg.Raft.ApplyTimeout + 5*time.Second)
	if d, has := ctx.Deadline(); has && d.Before(deadline) {
		deadline = d
	}
	c.SetDeadline(deadline)
	msg := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	if _, err := c.Write(append(msg, data...)); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", errForwardFailed, err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", errForwardFailed, err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(c, body); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", errForwardFailed, err)
	}
	c.SetDeadline(time.Time{})
	ok = true
	var rep forwardReply
	if err := json.Unmarshal(body, &rep); err != nil {
		return nil, 0, fmt.Errorf("%w: bad reply: %v", errForwardFailed, err)
	}
	return decodeForwardReply(rep)
}

// decodeForwardReply turns the leader's answer to one command into what
// Propose returns.
func decodeForwardReply(rep forwardReply) (*ApplyResult, uint64, error) {
	if rep.Err != "" && rep.Results == nil {
		if rep.Retryable {
			return nil, 0, fmt.Errorf("%w: leader: %s", errForwardFailed, rep.Err)
		}
		return nil, 0, errors.New("leader: " + rep.Err)
	}
	res := &ApplyResult{}
	if rep.Err != "" {
		res.Err = errors.New(rep.Err)
	}
	for _, fr := range rep.Results {
		res.Results = append(res.Results, decodeResult(fr))
	}
	return res, rep.Index, nil
}
