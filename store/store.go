package store

import (
	"io/fs"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/rserpool-go/registrar/asap"
	bolt "go.etcd.io/bbolt"
)

// PE is one pool element as stored.
type PE struct {
	Handle asap.PoolHandle
	// Element is the Pool Element parameter: ID, Home (the owning
	// registrar), Lifetime (ms), user transport, policy and ASAP transport.
	Element asap.PoolElement
	// Registered is the time of the PE's last registration in unix
	// nanoseconds, given by the caller (the raft FSM never reads the clock).
	Registered int64
}

// Options configures Open. A nil *Options and zero fields mean the
// defaults.
type Options struct {
	// NoSync skips the fsync after every Apply. A crash may then lose
	// applied batches: tests and benchmarks only. Default false.
	NoSync bool

	// Logger receives the store's few log lines (open, rebuild time).
	// Default: a null logger.
	Logger hclog.Logger

	// Timeout bounds how long Open waits for the file lock held by
	// another process or Store before it fails with ErrLocked. Zero means
	// DefaultTimeout (1 s); a negative value means fail at once.
	Timeout time.Duration

	// FileMode is the permission of a file Open creates. Default 0600.
	FileMode fs.FileMode

	// InitialMmapSize is passed to bbolt (bytes). bbolt must remap the
	// file when it grows past its mapping, and a remap waits until every
	// open read transaction ends: an FSM snapshot that keeps a ReadView
	// open while it is streamed would stall Apply. A
	// mapping larger than the file expected (1 GiB costs only address
	// space) avoids that. Default 0: bbolt's default (grow as needed).
	InitialMmapSize int

	// CommitDelay, when positive, takes the file's commit off Apply's
	// path (group commit): Apply changes memory and queues its writes;
	// everything queued is committed in one transaction (with fsync) once
	// CommitDelay has passed, or when 8192 writes are queued. A crash then
	// loses the last queued batches from the file, which is fine when
	// something else replays them: the raft FSM records the applied index
	// with the data, and raft replays the log after it. Readers of the
	// file (View, BeginView, snapshots) and Close and ReplaceAll commit
	// what is queued first. Default 0: every Apply commits before it
	// returns.
	CommitDelay time.Duration

	// InjectFault, if set, is called at each write site of the file
	// (commit, commit-landed, rewrite, rename, sync-dir) and a non-nil
	// error is treated as that operation's I/O error (commit-landed:
	// the commit happened but reports a failure). Fault injection tests
	// only; nil in production.
	InjectFault func(site string) error
}

// DefaultTimeout is how long Open waits for the file lock by default.
const DefaultTimeout = time.Second

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Logger == nil {
		r.Logger = hclog.NewNullLogger()
	}
	if r.Timeout == 0 {
		r.Timeout = DefaultTimeout
	} else if r.Timeout < 0 {
		r.Timeout = time.Nanosecond
	}
	if r.FileMode == 0 {
		r.FileMode = 0o600
	}
	return r
}

// OpKind is the kind of a write operation.
type OpKind uint8

// Write operations. The numeric values are not persisted (the raft log
// carries ENRP messages), but keep them stable anyway: only append.
const (
	// OpRegister adds a PE or replaces the stored one with the same
	// handle and ID (re-registration), after Check.
	OpRegister OpKind = iota + 1
	// OpDeregister removes the PE Op.PE.Handle / Op.PE.Element.ID.
	OpDeregister
	// OpReassign gives every PE whose Home is Op.From a new home among
	// Op.To: that owner's PEs, sorted by (handle, ID), are dealt round
	// robin over Op.To sorted ascending (duplicates ignored).
	OpReassign
	// OpDeleteOwner removes every PE whose Home is Op.From.
	OpDeleteOwner
	// OpReset removes every PE (before a snapshot restore).
	OpReset
)

// String gives the lower-case name (register, deregister, ...).
func (k OpKind) String() string {
	switch k {
	case OpRegister:
		return "register"
	case OpDeregister:
		return "deregister"
	case OpReassign:
		return "reassign"
	case OpDeleteOwner:
		return "delete-owner"
	case OpReset:
		return "reset"
	}
	return "op(" + strconv.Itoa(int(k)) + ")"
}

// Op is one write operation of an Apply batch.
type Op struct {
	Kind OpKind
	// PE is the PE of OpRegister (Handle, Element, Registered); OpDeregister
	// uses Handle and Element.ID.
	PE PE
	// From is the registrar whose PEs OpReassign and OpDeleteOwner act on.
	From uint32
	// To lists the registrars OpReassign deals the PEs to.
	To []uint32
}

// Result is the outcome of one Op.
type Result struct {
	// Err is the validation failure of the op (a *PEError for OpRegister,
	// ErrPENotFound for OpDeregister, ErrInvalidOp), or nil. A failed op
	// changes nothing and does not stop the batch.
	Err error
	// Changed counts the PEs added, updated, removed or moved.
	Changed int

	// What the op did, for change streams (cluster.Subscribe):
	//
	// Added: OpRegister added a PE that was not there (false: it updated
	// one). PoolCreated: that PE is the first of its pool.
	Added, PoolCreated bool
	// PoolsRemoved lists the pools whose last PE the op removed
	// (OpDeregister, OpDeleteOwner, not OpReset).
	PoolsRemoved []asap.PoolHandle
	// PEs lists the PEs OpReassign moved, as they are now (with their new
	// home), or the PEs OpDeleteOwner removed, as they were.
	PEs []PE
}

// PoolInfo summarises one pool.
type PoolInfo struct {
	Handle    asap.PoolHandle
	Policy    asap.PolicyType // the members' policy type
	Transport asap.ParamType  // the members' user transport kind
	PEs       int
}

// Cursor is a position in the handlespace order for Iterate: Iterate
// resumes after (Handle, ID). The zero Cursor (Started false) is the
// start.
type Cursor struct {
	Handle  asap.PoolHandle
	ID      uint32
	Started bool
}

// ownerStat is the per-registrar bookkeeping: how many PEs it owns and the
// unfolded sum of its PE checksum.
type ownerStat struct {
	n   int
	sum asap.Checksum
}

// Store is the handlespace: every pool and PE, an in-memory index with a
// selection structure per pool, persisted in a bbolt file. See the package
// documentation.
type Store struct {
	path string
	db   *bolt.DB // nil for OpenMemory
	opts Options
	log  hclog.Logger

	// wmu serialises writers (Apply, Close).
	wmu sync.Mutex

	// mu guards the index. Apply holds it for writing only while it
	// changes memory, never during disk I/O; readers hold it for reading.
	mu      sync.RWMutex
	closed  bool
	pools   map[asap.PoolHandle]*pool
	owners  map[uint32]*ownerStat
	nPE     int
	order   []*pool // every pool; sorted by handle unless orderDirty
	ordMu   sync.Mutex
	ordDirt bool // order needs sorting (or holds dead pools)

	applied atomic.Uint64

	// hookCommit, if set (tests only), runs just before Apply commits.
	hookCommit func(index uint64)

	// Group commit (Options.CommitDelay): queued writes, committed by
	// flush. pmu guards the queue and the fault state; cmu serialises
	// commits.
	pmu     sync.Mutex
	pend    []diskOp
	pendIdx uint64
	timer   *time.Timer
	cmu     sync.Mutex

	// The storage fault (see Fault) and its rewrite timer (pmu).
	fault     *FaultError
	retry     *time.Timer
	retryWait time.Duration
	stopRetry bool // set by Close
}

func newStore(path string, o Options) *Store {
	return &Store{
		path:   path,
		opts:   o,
		log:    o.Logger,
		pools:  make(map[asap.PoolHandle]*pool),
		owners: make(map[uint32]*ownerStat),
	}
}

// OpenMemory returns a Store without a file: Apply changes only memory
// and cannot fail with an I/O error, View and BeginView return ErrNoFile.
// For tests, benchmarks and tools.
func OpenMemory(opts *Options) *Store {
	return newStore("", opts.withDefaults())
}

// Path is the file name given to Open ("" for OpenMemory).
func (s *Store) Path() string { return s.path }

// LastApplied is the raft index of the last batch applied with a non-zero
// index (from the file after Open).
func (s *Store) LastApplied() uint64 { return s.applied.Load() }

// Close commits what is queued and closes the file. Later calls return
// nil; every other method then fails with ErrClosed (reads return empty
// results). During a storage fault Close tries once more to rewrite the
// file; if that fails too it returns the fault, and the file stays at its
// last good state (its recorded applied index is that of its content: a
// raft node replays the rest of its log at the next start).
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	flushErr := s.flush()
	if s.Fault() != nil {
		// One last attempt to bring the file up to date; else the raft
		// log replays what it lacks at the next start.
		flushErr = s.recoverLocked()
	}
	s.pmu.Lock()
	s.stopRetry = true
	if s.retry != nil {
		s.retry.Stop()
		s.retry = nil
	}
	s.pmu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.pools = make(map[asap.PoolHandle]*pool)
	s.owners = make(map[uint32]*ownerStat)
	s.order = nil
	s.nPE = 0
	s.mu.Unlock()
	if s.db != nil {
		if err := s.db.Close(); err != nil {
			return s.errf("close", err)
		}
	}
	return flushErr
}

// Abort closes the store the way a killed process leaves it: what group
// commit has queued is not committed (the file stays at its last commit,
// whose applied index says so: a raft node replays the rest of its log at
// the next start), a fault's rewrite is not tried again, and the file is
// closed. Every method then fails as after Close. Idempotent; Close after
// Abort does nothing.
func (s *Store) Abort() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.pmu.Lock()
	s.stopRetry = true
	for _, tm := range []*time.Timer{s.timer, s.retry} {
		if tm != nil {
			tm.Stop()
		}
	}
	s.timer, s.retry, s.pend, s.pendIdx = nil, nil, nil, 0
	s.pmu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.pools = make(map[asap.PoolHandle]*pool)
	s.owners = make(map[uint32]*ownerStat)
	s.order = nil
	s.nPE = 0
	db := s.db
	s.db = nil
	s.mu.Unlock()
	if db != nil {
		_ = db.Close()
	}
}

// handleLess orders pool handles as the file does: by length, then bytes.
func handleLess(a, b asap.PoolHandle) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func handleCompare(a, b asap.PoolHandle) int {
	switch {
	case a == b:
		return 0
	case handleLess(a, b):
		return -1
	}
	return 1
}

// sortedPools returns the live pools in handle order. The caller holds
// s.mu for reading (or writing).
func (s *Store) sortedPools() []*pool {
	s.ordMu.Lock()
	defer s.ordMu.Unlock()
	if s.ordDirt {
		live := s.order[:0]
		for _, p := range s.order {
			if !p.dead {
				live = append(live, p)
			}
		}
		clear(s.order[len(live):])
		s.order = live
		slices.SortFunc(s.order, func(a, b *pool) int { return handleCompare(a.handle, b.handle) })
		s.ordDirt = false
	}
	return s.order
}

// ---- index mutation (the caller holds s.mu for writing) ----

// insertEntry adds e to pool h, creating the pool with m if needed. The
// caller has removed any entry with the same ID.
func (s *Store) insertEntry(h asap.PoolHandle, e entry, m pmeta) {
	p := s.pools[h]
	if p == nil {
		p = newPool(h, m)
		s.pools[h] = p
		s.order = append(s.order, p)
		s.ordDirt = true
	} else if p.ents.n == 0 {
		p.setMeta(m)
	}
	p.add(e)
	s.nPE++
	o := s.owners[e.home]
	if o == nil {
		o = &ownerStat{}
		s.owners[e.home] = o
	}
	o.n++
	o.sum.Add(h, e.id)
}

// deleteEntry removes the entry in slot of p and returns it.
func (s *Store) deleteEntry(p *pool, slot int32) entry {
	e := *p.ents.at(slot)
	p.remove(slot)
	s.nPE--
	if o := s.owners[e.home]; o != nil {
		o.n--
		o.sum.Remove(p.handle, e.id)
		if o.n == 0 {
			delete(s.owners, e.home)
		}
	}
	if p.ents.n == 0 {
		p.dead = true
		delete(s.pools, p.handle)
		s.ordDirt = true
	}
	return e
}

// resetIndex empties the index and returns the old one (for undo).
func (s *Store) resetIndex() *indexState {
	old := &indexState{pools: s.pools, owners: s.owners, nPE: s.nPE, order: s.order}
	s.pools = make(map[asap.PoolHandle]*pool)
	s.owners = make(map[uint32]*ownerStat)
	s.order = nil
	s.nPE = 0
	s.ordDirt = false
	return old
}

// indexState is a whole index, kept by OpReset for undo.
type indexState struct {
	pools  map[asap.PoolHandle]*pool
	owners map[uint32]*ownerStat
	order  []*pool
	nPE    int
}

func (s *Store) restoreIndex(st *indexState) {
	s.pools, s.owners, s.nPE, s.order = st.pools, st.owners, st.nPE, st.order
	s.ordDirt = true
}
