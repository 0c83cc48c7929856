package cluster

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// InmemNetwork connects the Nodes and Memberships of one process without
// files or sockets, for tests (it should NOT be used in production), the
// way raft's and memberlist's own in-memory doubles serve their tests:
//
//   - each Node opened with NodeConfig.Inmem gets raft's InmemStore (log
//     and stable store), InmemSnapshotStore and an InmemTransport
//     connected to every other node of the network;
//   - forwarded writes travel over net.Pipe connections to the leader's
//     forwarded-write server, the same code as over TCP;
//   - the Membership of such a node gossips over a transport of
//     memberlist's MockNetwork. MockNetwork blocks a sender for good when
//     the receiving memberlist has stopped, and its maps are not safe for
//     concurrent use; this network wraps it: every transport drains its
//     queues until Close, drops what a stopped memberlist would not read
//     (a crashed registrar goes silent, so gossip marks it failed),
//     refuses connections to it, and registers transports under a lock.
//
// Close the network after every node and membership of it is shut down.
type InmemNetwork struct {
	mu      sync.RWMutex // the maps, and memberlist.MockNetwork's maps
	raft    map[raft.ServerAddress]*raft.InmemTransport
	forward map[string]func(net.Conn) // raft address -> the node's forwarded-write server
	gossip  map[string]*inmemGossip   // gossip address and name -> transport
	mock    memberlist.MockNetwork
	next    int

	wg        sync.WaitGroup // gossip relays and forwarded-write servers
	closed    chan struct{}
	closeOnce sync.Once
}

// NewInmemNetwork returns an empty in-memory network.
func NewInmemNetwork() *InmemNetwork {
	return &InmemNetwork{
		raft:    map[raft.ServerAddress]*raft.InmemTransport{},
		forward: map[string]func(net.Conn){},
		gossip:  map[string]*inmemGossip{},
		closed:  make(chan struct{}),
	}
}

// Close stops the gossip relays and waits for them and for the
// forwarded-write servers. Idempotent.
func (in *InmemNetwork) Close() {
	in.closeOnce.Do(func() { close(in.closed) })
	in.wg.Wait()
}

// openNode gives n in-memory raft stores and a transport connected to the
// other nodes, and routes forwarded writes to and from it.
func (in *InmemNetwork) openNode(n *Node) {
	st := raft.NewInmemStore()
	n.logStore, n.stable, n.snaps = st, st, raft.NewInmemSnapshotStore()
	in.mu.Lock()
	in.next++
	addr := raft.ServerAddress(fmt.Sprintf("inmem-%d-%08x", in.next, n.cfg.ID))
	_, t := raft.NewInmemTransport(addr)
	for a, o := range in.raft {
		t.Connect(a, o)
		o.Connect(addr, t)
	}
	in.raft[addr] = t
	in.forward[string(addr)] = n.serveForward
	in.mu.Unlock()
	n.trans = t
	n.closeTrans = func() error {
		in.mu.Lock()
		delete(in.raft, addr)
		delete(in.forward, string(addr))
		for _, o := range in.raft {
			o.Disconnect(addr)
		}
		in.mu.Unlock()
		return t.Close()
	}
	n.fwd.dial = func(to string, _ time.Duration) (net.Conn, error) { return in.dialForward(to) }
}

// errNoRoute is the error of a connection to a node that is not (or no
// longer) in the network.
var errNoRoute = errors.New("in-memory network: no route")

// dialForward opens a forwarded-write connection to the node at raft
// address to: one end of a pipe whose other end that node serves.
func (in *InmemNetwork) dialForward(to string) (net.Conn, error) {
	in.mu.RLock()
	serve := in.forward[to]
	in.mu.RUnlock()
	if serve == nil {
		return nil, fmt.Errorf("%w to %s", errNoRoute, to)
	}
	select {
	case <-in.closed:
		return nil, fmt.Errorf("%w to %s: network closed", errNoRoute, to)
	default:
	}
	client, server := net.Pipe()
	in.wg.Add(1)
	go func() { // ends when the dialer closes its end
		defer in.wg.Done()
		serve(server)
	}()
	return client, nil
}

// gossipTransport returns the memberlist transport of the member name.
func (in *InmemNetwork) gossipTransport(name string) *inmemGossip {
	in.mu.Lock()
	defer in.mu.Unlock()
	g := &inmemGossip{in: in, mock: in.mock.NewTransport(name),
		packets: make(chan *memberlist.Packet), streams: make(chan net.Conn), shut: make(chan struct{})}
	ip, port, _ := g.mock.FinalAdvertiseAddr("", 0)
	g.addr = net.JoinHostPort(ip.String(), fmt.Sprint(port))
	in.gossip[g.addr] = g
	in.gossip[name] = g
	in.wg.Add(2)
	go g.relayPackets()
	go g.relayStreams()
	return g
}

// inmemGossip is a memberlist transport over a MockTransport that keeps
// draining it (see InmemNetwork).
type inmemGossip struct {
	in       *InmemNetwork
	mock     *memberlist.MockTransport
	addr     string
	packets  chan *memberlist.Packet
	streams  chan net.Conn
	shut     chan struct{} // closed by Shutdown: the memberlist reads no more
	shutOnce sync.Once
	stopped  atomic.Bool
}

var _ memberlist.NodeAwareTransport = (*inmemGossip)(nil)

func (g *inmemGossip) relayPackets() {
	defer g.in.wg.Done()
	relay(g, g.mock.PacketCh(), g.packets, func(*memberlist.Packet) {})
}

func (g *inmemGossip) relayStreams() {
	defer g.in.wg.Done()
	relay(g, g.mock.StreamCh(), g.streams, func(c net.Conn) { _ = c.Close() })
}

// relay hands what arrives on from to the memberlist on to until the
// network closes; once the memberlist stopped it drops what arrives (drop
// closes a connection), as a host that is gone does. It always takes what
// arrives at once, queueing it while the memberlist is busy: a sender
// blocked on from holds in.mu's read lock, and a memberlist waiting for
// that lock (behind a writer waiting for it too) could then never read.
func relay[T any](g *inmemGossip, from <-chan T, to chan<- T, drop func(T)) {
	var queue []T
	for {
		var out chan<- T // nil (never ready) while nothing is queued
		var next T
		if len(queue) > 0 {
			out, next = to, queue[0]
		}
		select {
		case x := <-from:
			queue = append(queue, x)
		case out <- next:
			var zero T
			queue[0] = zero
			queue = queue[1:]
		case <-g.shut:
			for _, x := range queue {
				drop(x)
			}
			queue = nil
			for { // stopped: drop what arrives until the network closes
				select {
				case x := <-from:
					drop(x)
				case <-g.in.closed:
					return
				}
			}
		case <-g.in.closed:
			for _, x := range queue {
				drop(x)
			}
			return
		}
	}
}

// peer finds the live transport a is for; the caller holds in.mu.
func (g *inmemGossip) peer(a memberlist.Address) (*inmemGossip, error) {
	key := a.Name
	if key == "" {
		key = a.Addr
	}
	d := g.in.gossip[key]
	if d == nil || d.stopped.Load() {
		return nil, fmt.Errorf("%w to %s", errNoRoute, a)
	}
	return d, nil
}

func (g *inmemGossip) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return g.mock.FinalAdvertiseAddr(ip, port)
}

func (g *inmemGossip) WriteTo(b []byte, addr string) (time.Time, error) {
	return g.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (g *inmemGossip) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	g.in.mu.RLock()
	defer g.in.mu.RUnlock()
	if _, err := g.peer(a); err != nil {
		return time.Now(), nil // a datagram to a host that is gone is lost, not refused
	}
	return g.mock.WriteToAddress(b, a)
}

func (g *inmemGossip) PacketCh() <-chan *memberlist.Packet { return g.packets }

func (g *inmemGossip) IngestPacket(c net.Conn, addr net.Addr, now time.Time, shouldClose bool) error {
	return g.mock.IngestPacket(c, addr, now, shouldClose)
}

func (g *inmemGossip) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return g.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (g *inmemGossip) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	g.in.mu.RLock()
	defer g.in.mu.RUnlock()
	if _, err := g.peer(a); err != nil {
		return nil, err
	}
	return g.mock.DialAddressTimeout(a, timeout)
}

func (g *inmemGossip) StreamCh() <-chan net.Conn { return g.streams }

func (g *inmemGossip) IngestStream(c net.Conn) error { return g.mock.IngestStream(c) }

// Shutdown stops delivery to this member (memberlist calls it first in its
// own Shutdown); its queues go on being drained, so senders never block.
func (g *inmemGossip) Shutdown() error {
	g.stopped.Store(true)
	g.shutOnce.Do(func() { close(g.shut) })
	return nil
}
