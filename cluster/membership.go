package cluster

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// MetaVersion is the version of the gossip metadata format.
const MetaVersion = 1

// Meta is what every registrar gossips about itself (memberlist node
// metadata, JSON, well under memberlist's 512-byte limit).
type Meta struct {
	Version int      `json:"v"`
	ID      uint32   `json:"id"`
	Raft    string   `json:"raft"`
	RPC     string   `json:"rpc"` // forwarded writes: the raft port
	ASAP    []string `json:"asap,omitempty"`
	ENRP    []string `json:"enrp,omitempty"`
	HTTP    string   `json:"http,omitempty"`
	Expect  int      `json:"expect,omitempty"`
	State   bool     `json:"state"`             // has raft state (never bootstrap with it)
	Leaving bool     `json:"leaving,omitempty"` // set just before a graceful leave
	Build   string   `json:"build,omitempty"`
}

// MembershipConfig configures gossip membership.
type MembershipConfig struct {
	// NodeName is the memberlist name; stable across restarts. Default
	// "registrar-<id in hex>".
	NodeName string
	// Bind is the gossip address (default 127.0.0.1:7946; port 0 picks
	// one). Advertise is what others use (default: Bind's).
	Bind      string
	Advertise string
	// Join lists seed gossip addresses; the node retries them with
	// backoff (RetryInterval, doubling up to 30 s) until one answers.
	Join          []string
	RetryInterval time.Duration
	// BootstrapExpect forms a new cluster once this many registrars see
	// each other and none has raft state (0: no automatic bootstrap).
	BootstrapExpect int
	// EncryptKey is the gossip encryption key (16, 24 or 32 bytes,
	// base64 on the command line); empty = no encryption.
	EncryptKey []byte
	// Profile is lan or local (faster failure detection).
	Profile string
	// DataDir keeps peers.json: the gossip addresses last seen, so a
	// restarted registrar rejoins without seeds.
	DataDir string
	// ReconcileInterval is the period of the leader's reconcile loop.
	ReconcileInterval time.Duration
	// TakeoverGrace is how long a new leader waits before it takes over
	// the PEs of registrars that gossip does not know at all (a dead
	// registrar is taken over at once).
	TakeoverGrace time.Duration
	// IsForeign tells owners that are foreign ENRP registrars (not
	// members of this cluster); their PEs are not taken over here.
	IsForeign func(id uint32) bool
	// Voters is how many raft voters the cluster keeps (1 to MaxVoters;
	// 0: DefaultVoters); every further registrar is a non-voter. Only the
	// leader's setting counts.
	Voters int
	// Autopilot decides when a non-voter is fit to replace a voter.
	Autopilot Autopilot
	Logger    hclog.Logger
}

// DefaultMembershipConfig returns the settings of a profile.
func DefaultMembershipConfig(profile string) MembershipConfig {
	c := MembershipConfig{Bind: "127.0.0.1:7946", RetryInterval: time.Second, Profile: profile,
		ReconcileInterval: time.Second, TakeoverGrace: 10 * time.Second, Voters: DefaultVoters,
		Autopilot: Autopilot{LastContactThreshold: 200 * time.Millisecond, MaxTrailingLogs: 250, StabilizationTime: 10 * time.Second}}
	if profile == ProfileLocal {
		c.Autopilot.StabilizationTime = 2 * time.Second
		c.ReconcileInterval = 200 * time.Millisecond
		c.TakeoverGrace = 2 * time.Second
		c.RetryInterval = 200 * time.Millisecond
	}
	return c
}

// Validate lists every problem.
func (c *MembershipConfig) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Bind); err != nil {
		errs = append(errs, fmt.Errorf("gossip %q: %v", c.Bind, err))
	}
	if c.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
			errs = append(errs, fmt.Errorf("gossip advertise %q: %v", c.Advertise, err))
		}
	}
	for _, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			errs = append(errs, fmt.Errorf("join %q: %v", j, err))
		}
	}
	if c.BootstrapExpect < 0 {
		errs = append(errs, fmt.Errorf("bootstrap-expect %d is negative", c.BootstrapExpect))
	}
	if n := len(c.EncryptKey); n != 0 && n != 16 && n != 24 && n != 32 {
		errs = append(errs, fmt.Errorf("encrypt key of %d bytes: want 16, 24 or 32", n))
	}
	if c.RetryInterval <= 0 {
		errs = append(errs, fmt.Errorf("retry-join interval %v must be positive", c.RetryInterval))
	}
	if c.Voters < 0 || c.Voters > MaxVoters {
		errs = append(errs, fmt.Errorf("voters %d: want 1 to %d", c.Voters, MaxVoters))
	}
	if c.Autopilot.LastContactThreshold < 0 || c.Autopilot.StabilizationTime < 0 {
		errs = append(errs, fmt.Errorf("autopilot last contact threshold %v and stabilization time %v must not be negative",
			c.Autopilot.LastContactThreshold, c.Autopilot.StabilizationTime))
	}
	if c.ReconcileInterval <= 0 {
		errs = append(errs, fmt.Errorf("reconcile interval %v must be positive", c.ReconcileInterval))
	}
	return errors.Join(errs...)
}

// ParseEncryptKey decodes a base64 gossip key.
func ParseEncryptKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("encrypt key is not base64: %v", err)
	}
	return k, nil
}

func memberlistConfig(profile string) *memberlist.Config {
	if profile != ProfileLocal {
		return memberlist.DefaultLANConfig()
	}
	c := memberlist.DefaultLocalConfig()
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.SuspicionMult = 2
	c.GossipInterval = 50 * time.Millisecond
	c.PushPullInterval = 5 * time.Second
	c.GossipToTheDeadTime = 5 * time.Second
	c.TCPTimeout = time.Second
	return c
}

// MemberStatus is what gossip says of a registrar.
//
// WARNING: only append to this list: reconcile plans compare the values.
type MemberStatus uint8

const (
	StatusAlive  MemberStatus = iota + 1 // joined, or updated its metadata
	StatusFailed                         // stopped answering without saying it leaves
	StatusLeft                           // left on purpose (Leave)
)

// String is "alive", "failed" or "left" ("unknown" for the zero value:
// a registrar gossip does not know).
func (s MemberStatus) String() string {
	switch s {
	case StatusAlive:
		return "alive"
	case StatusFailed:
		return "failed"
	case StatusLeft:
		return "left"
	case 0:
		return "unknown"
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText writes String, so JSON shows "alive".
func (s MemberStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Member is one registrar as gossip sees it.
type Member struct {
	Name   string
	Addr   string // gossip address
	Meta   Meta
	Status MemberStatus
	Since  time.Time
}

// Membership runs memberlist for a node and, on the leader, reconciles
// gossip into raft: alive registrars become voters, registrars that left
// are removed, and the PEs of failed ones are taken over.
type Membership struct {
	cfg  MembershipConfig
	node *Node
	log  hclog.Logger
	ml   *memberlist.Memberlist
	// keyring is memberlist's keyring (nil: no encryption); keyMu
	// serialises its changes and their saving.
	keyring *memberlist.Keyring
	keyMu   sync.Mutex

	mu      sync.Mutex
	meta    Meta
	members map[string]*Member
	// leaving: members that told us (leaveNotice) they leave for good.
	leaving map[string]bool
	// reports: unreachability reports other members passed to us.
	reports chan Report
	kick    chan struct{}
	// stopped: Shutdown began. memberlist may still call our delegates
	// from connections it was serving; they no longer write peers.json
	// (the data dir may be gone by then).
	stopped bool

	reconciled atomic.Int64  // reconcile passes done as leader (tests wait for rounds)
	health     healthTracker // the reconcile loop's

	quit      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	leaveOnce sync.Once
}

// StartMembership starts gossip for node with our metadata and joins the
// seeds (or the peers remembered in DataDir) in the background.
func StartMembership(cfg MembershipConfig, node *Node, meta Meta) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	meta.Version = MetaVersion
	meta.ID = node.cfg.ID
	meta.Raft = string(node.Addr())
	meta.RPC = meta.Raft
	meta.Expect = cfg.BootstrapExpect
	m := &Membership{cfg: cfg, node: node, log: log, meta: meta, members: map[string]*Member{}, leaving: map[string]bool{},
		reports: make(chan Report, reportQueue),
		kick:    make(chan struct{}, 1), quit: make(chan struct{})}
	if m.cfg.Voters == 0 {
		m.cfg.Voters = DefaultVoters
	}
	if m.cfg.Autopilot == (Autopilot{}) {
		m.cfg.Autopilot = DefaultMembershipConfig(cfg.Profile).Autopilot
	}
	if m.cfg.NodeName == "" {
		m.cfg.NodeName = fmt.Sprintf("registrar-%08x", node.cfg.ID)
	}
	mc := memberlistConfig(cfg.Profile)
	mc.Name = m.cfg.NodeName
	host, port, _ := net.SplitHostPort(cfg.Bind)
	mc.BindAddr = host
	mc.BindPort, _ = strconv.Atoi(port)
	mc.AdvertisePort = mc.BindPort
	if cfg.Advertise != "" {
		h, p, _ := net.SplitHostPort(cfg.Advertise)
		mc.AdvertiseAddr = h
		mc.AdvertisePort, _ = strconv.Atoi(p)
	}
	if node.cfg.Inmem != nil {
		mc.Transport = node.cfg.Inmem.gossipTransport(mc.Name) // Bind and Advertise are not used
	}
	kr, err := m.openKeyring()
	if err != nil {
		return nil, err
	}
	m.keyring, mc.Keyring = kr, kr
	mc.Delegate = (*mlDelegate)(m)
	mc.Events = (*mlEvents)(m)
	mc.Logger = log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	// A registrar whose data dir was wiped comes back under a new name;
	// a restarted one under its old name, maybe with a new address.
	mc.DeadNodeReclaimTime = 5 * time.Second
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossip bind %s: %w", cfg.Bind, err)
	}
	m.ml = ml
	seeds := cfg.Join
	if len(seeds) == 0 {
		seeds = m.loadPeers()
	}
	m.wg.Add(1)
	go m.joinLoop(seeds)
	m.wg.Add(1)
	go m.reconcileLoop()
	log.Info("gossip started", "name", mc.Name, "address", ml.LocalNode().Address(), "seeds", seeds)
	return m, nil
}

// LocalAddr is the gossip address.
func (m *Membership) LocalAddr() string { return m.ml.LocalNode().Address() }

// SetMeta updates our metadata (e.g. once the ASAP address is known).
func (m *Membership) SetMeta(f func(*Meta)) {
	m.mu.Lock()
	f(&m.meta)
	m.mu.Unlock()
	_ = m.ml.UpdateNode(2 * time.Second)
}

// Members lists every registrar gossip knows, sorted by name.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.members))
	for _, mb := range m.members {
		out = append(out, *mb)
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func (m *Membership) syncMember(id uint32) error {
	m.mu.Lock()
	var addr string
	for _, mb := range m.members {
		if mb.Meta.ID == id {
			addr = mb.Addr
		}
	}
	m.mu.Unlock()
	if addr == "" {
		return fmt.Errorf("no member %08x", id)
	}
	_, err := m.ml.Join([]string{addr})
	return err
}

// joinLoop joins the seeds, retrying with backoff until one answers.
func (m *Membership) joinLoop(seeds []string) {
	defer m.wg.Done()
	if len(seeds) == 0 {
		return
	}
	wait := m.cfg.RetryInterval
	for attempt := 1; ; attempt++ {
		n, err := m.ml.Join(seeds)
		if n > 0 {
			m.log.Info("joined the cluster", "contacted", n, "seeds", seeds)
			m.poke()
			return
		}
		m.log.Warn("no seed answered; retrying", "seeds", seeds, "attempt", attempt, "retry-in", wait, "error", err)
		select {
		case <-m.quit:
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

func (m *Membership) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// peers.json remembers the gossip addresses of the other registrars.
func (m *Membership) peersPath() string {
	if m.cfg.DataDir == "" {
		return ""
	}
	return filepath.Join(m.cfg.DataDir, "peers.json")
}

func (m *Membership) loadPeers() []string {
	p := m.peersPath()
	if p == "" {
		return nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	var peers []string
	if err := json.Unmarshal(b, &peers); err != nil {
		m.log.Warn("ignoring unreadable peers file", "path", p, "error", err)
		return nil
	}
	return peers
}

func (m *Membership) savePeersLocked() {
	p := m.peersPath()
	if p == "" || m.stopped {
		return
	}
	var peers []string
	for name, mb := range m.members {
		if name != m.cfg.NodeName && mb.Status == StatusAlive {
			peers = append(peers, mb.Addr)
		}
	}
	if len(peers) == 0 {
		return
	}
	slices.Sort(peers)
	b, _ := json.Marshal(peers)
	tmp := p + ".tmp"
	if os.WriteFile(tmp, b, 0o640) == nil {
		_ = os.Rename(tmp, p)
	}
}

// --- memberlist delegates ---

type mlDelegate Membership

func (d *mlDelegate) NodeMeta(limit int) []byte {
	m := (*Membership)(d)
	m.mu.Lock()
	meta := m.meta
	m.mu.Unlock()
	if has, err := m.node.hasState(); err == nil {
		meta.State = has
	}
	b, _ := json.Marshal(meta)
	if len(b) > limit {
		meta.ASAP, meta.ENRP = meta.ASAP[:min(1, len(meta.ASAP))], meta.ENRP[:min(1, len(meta.ENRP))]
		b, _ = json.Marshal(meta)
	}
	return b
}

// leaveNotice tags the message a leaving registrar sends every member
// over gossip's reliable stream before its leave broadcast; the rest is
// its gossip name.
const leaveNotice = 'L'

// NotifyMsg takes an unreachability report (report.go) or a leave
// notice: the member is Left from now on (unless
// it joins again), whichever of its gossiped Leaving flag and its leave
// broadcast arrives first or at all.
func (d *mlDelegate) NotifyMsg(b []byte) {
	m := (*Membership)(d)
	if len(b) > 0 && b[0] == reportMsg {
		m.takeReport(b)
		return
	}
	if len(b) < 2 || b[0] != leaveNotice {
		return
	}
	name := string(b[1:])
	m.mu.Lock()
	m.leaving[name] = true
	mb := m.members[name]
	changed := mb != nil && mb.Status != StatusLeft
	var id uint32
	var addr string
	var now Member
	if changed {
		mb.Status, mb.Since = StatusLeft, time.Now()
		id, addr = mb.Meta.ID, mb.Addr
		now = *mb
		m.savePeersLocked()
	}
	m.mu.Unlock()
	if changed {
		m.node.fsm.changes.publish(Change{Kind: ChangeMember, Member: now})
		m.log.Info("member left", "name", name, "id", fmt.Sprintf("%08x", id), "address", addr)
		m.poke()
	}
}

func (d *mlDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *mlDelegate) LocalState(join bool) []byte                { return nil }
func (d *mlDelegate) MergeRemoteState(buf []byte, join bool)     {}

type mlEvents Membership

func (e *mlEvents) update(n *memberlist.Node, status MemberStatus) {
	m := (*Membership)(e)
	var meta Meta
	if err := json.Unmarshal(n.Meta, &meta); err != nil || meta.ID == 0 {
		m.log.Warn("gossip member without registrar metadata", "name", logName(n.Name), "address", n.Address())
		return
	}
	m.mu.Lock()
	switch {
	case status == StatusFailed && m.leaving[n.Name]:
		status = StatusLeft // its leave notice came first
	case status == StatusAlive:
		delete(m.leaving, n.Name) // joined again
	}
	mb, ok := m.members[n.Name]
	if !ok {
		mb = &Member{Name: n.Name}
		m.members[n.Name] = mb
	}
	changed := !ok || mb.Status != status
	if changed {
		mb.Since = time.Now()
	}
	mb.Addr, mb.Meta, mb.Status = n.Address(), meta, status
	now := *mb
	m.savePeersLocked()
	m.mu.Unlock()
	if changed {
		m.node.fsm.changes.publish(Change{Kind: ChangeMember, Member: now})
	}
	m.log.Info("member "+status.String(), "name", logName(n.Name), "id", fmt.Sprintf("%08x", meta.ID), "address", n.Address())
	m.poke()
}

// NotifyJoin and NotifyUpdate: a registrar that gossips Leaving has left
// for good, although its gossip may still answer: its leave message (a
// broadcast memberlist sends a bounded number of times, to random
// members, a failed one among them) can miss the leader, and a leaving
// registrar whose process goes on is never found failed.
func (e *mlEvents) NotifyJoin(n *memberlist.Node)   { e.update(n, aliveUnlessLeaving(n)) }
func (e *mlEvents) NotifyUpdate(n *memberlist.Node) { e.update(n, aliveUnlessLeaving(n)) }

func aliveUnlessLeaving(n *memberlist.Node) MemberStatus {
	var meta Meta
	if json.Unmarshal(n.Meta, &meta) == nil && meta.Leaving {
		return StatusLeft
	}
	return StatusAlive
}

// NotifyLeave: memberlist reports a graceful leave and a failure the same
// way (the Node's State field is not updated before the call), so a
// leaving registrar first gossips Leaving in its metadata.
func (e *mlEvents) NotifyLeave(n *memberlist.Node) {
	var meta Meta
	_ = json.Unmarshal(n.Meta, &meta)
	if meta.Leaving || n.State == memberlist.StateLeft {
		e.update(n, StatusLeft)
	} else {
		e.update(n, StatusFailed)
	}
}

// Leave tells the cluster this registrar is leaving for good: leadership
// moves away first, then gossip broadcasts the leave (the leader removes
// it from raft and takes over its PEs). Idempotent.
func (m *Membership) Leave(timeout time.Duration) error {
	var err error
	m.leaveOnce.Do(func() {
		if m.node.IsLeader() && len(m.node.raft.GetConfiguration().Configuration().Servers) > 1 {
			if f := m.node.raft.LeadershipTransfer(); f.Error() != nil {
				m.log.Warn("leadership transfer before leave failed", "error", f.Error())
			}
		}
		m.SetMeta(func(meta *Meta) { meta.Leaving = true })
		m.sendLeaveNotices()
		err = m.ml.Leave(timeout)
	})
	return err
}

// sendLeaveNotices tells every alive member over gossip's reliable
// stream that this registrar leaves for good. Memberlist's leave
// broadcast goes to a few random members a bounded number of times (a
// failed member among them) and may miss the leader, whose gossip then
// takes the registrar for alive (its gossip still answers while it
// leaves) or failed (after it stopped), and would not remove it from
// raft.
func (m *Membership) sendLeaveNotices() {
	msg := append([]byte{leaveNotice}, m.ml.LocalNode().Name...)
	for _, n := range m.ml.Members() {
		if n.Name == m.ml.LocalNode().Name {
			continue
		}
		if err := m.ml.SendReliable(n, msg); err != nil {
			m.log.Debug("leave notice not delivered", "name", n.Name, "error", err)
		}
	}
}

// Shutdown stops gossip and the reconcile loop. Idempotent.
func (m *Membership) Shutdown() error {
	var err error
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.stopped = true
		m.mu.Unlock()
		close(m.quit)
		m.wg.Wait()
		err = m.ml.Shutdown()
	})
	return err
}
