package registrar_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/watchclient"
)

// watchState is what a client of the change stream knows of the
// handlespace: built only from events, committed at each SSE id (the end
// of a raft index), as a client that resumes must.
type watchState struct {
	t       *testing.T
	pools   map[string]map[string]string // pool -> PE ID -> home/load
	pending []*watchclient.Event
	seen    map[string]bool // index/type/pool/pe of every event applied
	last    uint64          // index of the last event applied
	reasons map[string]int  // removal reasons seen
	events  int
}

func newWatchState(t *testing.T) *watchState {
	return &watchState{t: t, pools: map[string]map[string]string{}, seen: map[string]bool{}, reasons: map[string]int{}}
}

func peKeyOf(e *watchclient.Event) string {
	if e.PE == nil {
		return ""
	}
	return e.PE.ID
}

// add takes one event; the pending ones are applied when it carries an
// id.
func (s *watchState) add(e *watchclient.Event) {
	s.pending = append(s.pending, e)
	if e.ID == "" {
		return
	}
	for _, p := range s.pending {
		s.apply(p)
	}
	s.pending = s.pending[:0]
}

func (s *watchState) apply(e *watchclient.Event) {
	t := s.t
	t.Helper()
	if strings.HasPrefix(e.Type, "stream.") || strings.HasPrefix(e.Type, "member.") || e.Type == "leader.changed" {
		return
	}
	key := fmt.Sprintf("%d/%s/%s/%s", e.Index, e.Type, e.Pool, peKeyOf(e))
	if s.seen[key] {
		t.Errorf("event %s delivered twice", key)
	}
	s.seen[key] = true
	if e.Index < s.last {
		t.Errorf("event %s after an event at index %d: out of order", key, s.last)
	}
	s.last = e.Index
	s.events++
	pool := s.pools[e.Pool]
	switch e.Type {
	case registrar.EventPoolCreated:
		if pool != nil {
			t.Errorf("%s: the pool exists (%d PEs)", key, len(pool))
		}
		s.pools[e.Pool] = map[string]string{}
	case registrar.EventPoolRemoved:
		if pool == nil || len(pool) != 0 {
			t.Errorf("%s: the pool is missing or not empty (%v)", key, pool)
		}
		delete(s.pools, e.Pool)
	case registrar.EventPERegistered, registrar.EventPEUpdated:
		if pool == nil {
			t.Errorf("%s: no pool.created before", key)
			pool = map[string]string{}
			s.pools[e.Pool] = pool
		}
		if _, ok := pool[e.PE.ID]; ok == (e.Type == registrar.EventPERegistered) {
			t.Errorf("%s: the PE was known already: %v", key, ok)
		}
		pool[e.PE.ID] = fmt.Sprintf("%s/%d", e.PE.Home, e.PE.Policy.Load)
	case registrar.EventPERemoved:
		if _, ok := pool[e.PE.ID]; !ok {
			t.Errorf("%s: removal of a PE not known", key)
		}
		delete(pool, e.PE.ID)
		s.reasons[e.Reason]++
	default:
		t.Errorf("unexpected event %s", key)
	}
}

// compare checks the state against the registrar's handlespace.
func (s *watchState) compare(hs *cluster.Handlespace) {
	s.t.Helper()
	want := map[string]map[string]string{}
	for _, p := range hs.Pools() {
		m := map[string]string{}
		for _, pe := range hs.Pool(p.Handle) {
			m[fmt.Sprintf("0x%08x", pe.Element.ID)] = fmt.Sprintf("0x%08x/%d", pe.Element.Home, pe.Element.Policy.Load)
		}
		want[string(p.Handle)] = m
	}
	for h, m := range want {
		if got := s.pools[h]; fmt.Sprint(got) != fmt.Sprint(m) {
			s.t.Errorf("pool %s: the stream's state %v, the handlespace %v", h, got, m)
		}
	}
	for h := range s.pools {
		if want[h] == nil {
			s.t.Errorf("pool %s is in the stream's state (%d PEs) but not in the handlespace", h, len(s.pools[h]))
		}
	}
}

// getIndex GETs url and returns the status, X-Registrar-Index and body.
func getIndex(t *testing.T, url string) (int, uint64, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	idx, _ := strconv.ParseUint(resp.Header.Get(registrar.HeaderIndex), 10, 64)
	return resp.StatusCode, idx, string(b)
}

// caughtUp waits until the change stream has taken every change the
// registrar applied (it follows them on its own goroutine).
func caughtUp(t *testing.T, r *testRegistrar) {
	t.Helper()
	applied := r.Handlespace().LastApplied()
	waitFor(t, 10*time.Second, fmt.Sprintf("the change stream at index %d", applied), func() bool {
		_, at, _ := getIndex(t, "http://"+r.HTTPAddr()+"/v1/pools")
		return at >= applied
	})
}

func lu(load uint32) asap.Policy { return asap.Policy{Type: asap.PolicyLeastUsed, Load: load} }

// Ensure the change stream delivers every committed change in order and
// exactly once across a client killed mid-stream that resumes from the
// last index it completed: the state built from the events equals the
// handlespace, with the removal reasons given.
func TestWatch_ResumeAfterKilledClient(t *testing.T) {
	r := startRegistrar(t, "", nil)
	base := "http://" + r.HTTPAddr()
	hs := r.Handlespace()
	_, start, _ := getIndex(t, base+"/v1/pools")

	ctx := context.Background()
	writes := make(chan error, 1)
	go func() {
		writes <- func() error {
			for i := uint32(1); i <= 300; i++ {
				h := asap.PoolHandle(fmt.Sprintf("pool-%d", i%4))
				pe := testPE(i, uint16(7000+i), lu(i))
				pe.Home = r.ID()
				if err := hs.Register(ctx, h, pe); err != nil {
					return err
				}
				if i%7 == 0 { // an update: a new load
					pe.Policy.Load = 1000 + i
					if err := hs.Register(ctx, h, pe); err != nil {
						return err
					}
				}
				if i%5 == 0 {
					if err := hs.Remove(ctx, h, pe, cluster.ReasonUnreachable); err != nil {
						return err
					}
				}
				if i%50 == 0 { // one raft index, five events
					var batch []*enrp.HandleUpdate
					for j := uint32(0); j < 5; j++ {
						b := testPE(10000+i+j, 7000, lu(j))
						b.Home = r.ID()
						batch = append(batch, &enrp.HandleUpdate{Header: enrp.Header{Sender: r.ID()}, Action: enrp.AddPE, PoolHandle: "batch", PoolElement: b})
					}
					if err := hs.Batch(ctx, batch); err != nil {
						return err
					}
				}
			}
			// Empty pool-0 (a pool removed), then the end marker.
			for _, pe := range hs.Pool("pool-0") {
				if err := hs.Deregister(ctx, "pool-0", pe.Element); err != nil {
					return err
				}
			}
			return hs.Register(ctx, "done", testPE(1, 7999, lu(0)))
		}()
	}()

	st := newWatchState(t)
	killed := errors.New("client killed")
	n := 0
	resume, err := watchclient.Stream(ctx, http.DefaultClient, base, "", start, true, func(e *watchclient.Event) error {
		st.add(e)
		// Killed inside a raft index of several events (a batch).
		if n++; n >= 150 && e.ID == "" && e.Pool == "batch" {
			return killed
		}
		return nil
	})
	if !errors.Is(err, killed) {
		t.Fatalf("first stream ended with %v after %d events, want it killed inside a batch after 150", err, n)
	}
	if len(st.pending) == 0 {
		t.Fatal("the client was not killed inside a raft index")
	}
	t.Logf("killed after %d events, %d of them in an index not completed; resuming after index %d", n, len(st.pending), resume)
	st.pending = nil // not completed: the resume sends them again
	done := errors.New("end marker seen")
	_, err = watchclient.Stream(ctx, http.DefaultClient, base, "", resume, true, func(e *watchclient.Event) error {
		st.add(e)
		if e.Pool == "done" && e.Type == registrar.EventPERegistered {
			return done
		}
		return nil
	})
	if !errors.Is(err, done) {
		t.Fatalf("resumed stream ended with %v before the end marker", err)
	}
	if err := <-writes; err != nil {
		t.Fatal(err)
	}
	st.compare(hs)
	if st.reasons["unreachable"] != 60 || st.reasons["deregistered"] == 0 {
		t.Errorf("removal reasons %v, want 60 unreachable and some deregistered", st.reasons)
	}
	if st.pools["pool-0"] != nil {
		t.Errorf("pool-0 is still in the stream's state: %v", st.pools["pool-0"])
	}
}

// Ensure removals that supervision and PEs cause carry their reasons:
// an ASAP deregistration and a keep-alive timeout, streamed live to a
// client watching one pool only.
func TestWatch_RemovalReasonsLive(t *testing.T) {
	r := startRegistrar(t, "", func(c *registrar.Config) {
		c.KeepAliveInterval = registrar.Duration(100 * time.Millisecond)
		c.KeepAliveTimeout = registrar.Duration(time.Second)
	})
	base := "http://" + r.HTTPAddr()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan *watchclient.Event, 64)
	var stopped atomic.Bool
	go func() {
		_, err := watchclient.Stream(ctx, http.DefaultClient, base, "pool", 0, false, func(e *watchclient.Event) error {
			events <- e
			return nil
		})
		close(events)
		if ctx.Err() == nil && !stopped.Load() {
			t.Errorf("stream ended: %v", err)
		}
	}()
	nextEvent := func(what string) *watchclient.Event {
		t.Helper()
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("stream ended while waiting for %s", what)
			}
			return e
		case <-time.After(15 * time.Second):
			t.Fatalf("no event within 15 s while waiting for %s", what)
		}
		return nil
	}
	if e := nextEvent("stream.ready"); e.Type != registrar.EventReady || e.ID == "" {
		t.Fatalf("first event %+v, want stream.ready with an id", e)
	}
	other := dial(t, r, true)
	mustRegister(t, other, "other-pool", testPE(9, 7009, asap.Policy{Type: asap.PolicyRoundRobin}))
	alive := dial(t, r, true)
	silent := dial(t, r, false)
	mustRegister(t, alive, "pool", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	mustRegister(t, silent, "pool", testPE(2, 7002, asap.Policy{Type: asap.PolicyRoundRobin}))
	alive.call(&asap.Deregistration{PoolHandle: "pool", ID: 1})
	var got []string
	for len(got) < 6 {
		e := nextEvent(fmt.Sprintf("the keep-alive timeout (have %v)", got))
		if e.Pool != "pool" {
			t.Errorf("a stream of pool \"pool\" sent %s of pool %q", e.Type, e.Pool)
		}
		s := e.Type
		if e.Reason != "" {
			s += "(" + e.Reason + ")"
		}
		got = append(got, s)
	}
	want := []string{"pool.created", "pe.registered", "pe.registered", "pe.removed(deregistered)", "pe.removed(keep-alive-timeout)", "pool.removed"}
	if !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	// A registrar that stops ends its streams (Stop reports a shutdown
	// that waited for them as an error of Run).
	stopped.Store(true)
	r.Stop()
	for e := range events {
		t.Errorf("event after the stop: %+v", e)
	}
}

// Ensure a client resuming from an index older than the history is told
// to resync (and one from a recent index is not); bad queries are
// refused naming the parameter.
func TestWatch_ResyncAndBadQueries(t *testing.T) {
	r := startRegistrar(t, "", func(c *registrar.Config) { c.WatchHistory = 100 })
	base := "http://" + r.HTTPAddr()
	_, old, _ := getIndex(t, base+"/v1/pools")
	ctx := context.Background()
	for i := uint32(1); i <= 120; i++ {
		pe := testPE(i, 7000, lu(1))
		pe.Home = r.ID()
		if err := r.Handlespace().Register(ctx, "pool", pe); err != nil {
			t.Fatal(err)
		}
	}
	caughtUp(t, r) // then the history has moved past old
	var first *watchclient.Event
	_, err := watchclient.Stream(ctx, http.DefaultClient, base, "", old, true, func(e *watchclient.Event) error {
		if first == nil {
			first = e
		}
		return nil
	})
	if !errors.Is(err, watchclient.ErrResync) || first == nil || first.Type != registrar.EventResync || !strings.Contains(first.Reason, "older than the history") {
		t.Errorf("resume from index %d after 120 changes with a history of 100: %v, first event %+v; want a resync", old, err, first)
	}
	_, now, _ := getIndex(t, base+"/v1/pools")
	stop := errors.New("ready")
	_, err = watchclient.Stream(ctx, http.DefaultClient, base, "", now-10, true, func(e *watchclient.Event) error {
		if e.Type == registrar.EventReady {
			return stop
		}
		if e.Type != registrar.EventPERegistered || e.Index <= now-10 {
			t.Errorf("resume from %d: event %s at %d", now-10, e.Type, e.Index)
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("resume from a recent index: %v, want the replay and stream.ready", err)
	}
	// An EventSource reconnects to the URL it was opened with (an old
	// index) and says where it is in Last-Event-ID, which wins.
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/watch?index=%d", base, old), nil)
	req.Header.Set("Last-Event-ID", strconv.FormatUint(now, 10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	if line != "event: "+registrar.EventReady+"\n" {
		t.Errorf("?index=%d with Last-Event-ID %d: first line %q, want stream.ready (no resync)", old, now, line)
	}
	for _, q := range []struct{ path, field string }{
		{"/v1/watch?index=abc", "index"},
		{"/v1/watch?index=-1", "index"},
		{"/v1/watch?pool=0xZZ", "pool"},
		{"/v1/pools/pool?index=1&wait=soon", "wait"},
		{"/v1/pools/pool?index=x", "index"},
	} {
		code, _, body := getIndex(t, base+q.path)
		var e registrar.APIError
		if code != http.StatusBadRequest || json.Unmarshal([]byte(body), &e) != nil || !strings.HasPrefix(e.Error, q.field) {
			t.Errorf("GET %s: %d %s, want 400 naming %s", q.path, code, body, q.field)
		}
	}
}

// Ensure the blocking query on a pool returns when the pool changes past
// the index given (with the new index and content), and at the end of
// the wait when it does not (with the same index), and that a change of
// another pool does not end it.
func TestWatch_PoolLongPoll(t *testing.T) {
	r := startRegistrar(t, "", nil)
	base := "http://" + r.HTTPAddr()
	hs := r.Handlespace()
	ctx := context.Background()
	pe := testPE(1, 7001, lu(5))
	pe.Home = r.ID()
	if err := hs.Register(ctx, "pool", pe); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, r)
	code, idx, body := getIndex(t, base+"/v1/pools/pool")
	if code != http.StatusOK || idx == 0 {
		t.Fatalf("GET /v1/pools/pool: %d, index %d: %s", code, idx, body)
	}
	// Nothing changes: the wait ends with the same index.
	began := time.Now()
	code, again, _ := getIndex(t, fmt.Sprintf("%s/v1/pools/pool?index=%d&wait=300ms", base, idx))
	if code != http.StatusOK || again != idx || time.Since(began) < 300*time.Millisecond {
		t.Errorf("a wait of 300ms without change: %d, index %d after %v; want 200, index %d, after the wait", code, again, time.Since(began), idx)
	}
	type answer struct {
		code  int
		index uint64
		body  string
	}
	polled := make(chan answer, 1)
	go func() {
		c, i, b := getIndex(t, fmt.Sprintf("%s/v1/pools/pool?index=%d&wait=30s", base, idx))
		polled <- answer{c, i, b}
	}()
	other := testPE(2, 7002, lu(1))
	other.Home = r.ID()
	if err := hs.Register(ctx, "other", other); err != nil {
		t.Fatal(err)
	}
	pe.Policy.Load = 77
	if err := hs.Register(ctx, "pool", pe); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-polled:
		var d registrar.PoolDetail
		if err := json.Unmarshal([]byte(a.body), &d); err != nil || a.code != http.StatusOK || a.index <= idx+1 || len(d.PEs) != 1 || d.PEs[0].Policy.Load != 77 {
			t.Errorf("the blocking query answered %d, index %d (asked %d), %s; want the update (load 77) at a later index than the other pool's change", a.code, a.index, idx, a.body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the blocking query did not return within 20 s of the pool's change")
	}
	// A pool that goes away answers 404 with the index of its removal.
	polled2 := make(chan answer, 1)
	caughtUp(t, r)
	_, cur, _ := getIndex(t, base+"/v1/pools/pool")
	go func() {
		c, i, b := getIndex(t, fmt.Sprintf("%s/v1/pools/pool?index=%d&wait=30s", base, cur))
		polled2 <- answer{c, i, b}
	}()
	if err := hs.Deregister(ctx, "pool", pe); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-polled2:
		if a.code != http.StatusNotFound || a.index <= cur {
			t.Errorf("blocking query on a pool removed: %d, index %d (asked %d), want 404 at a later index", a.code, a.index, cur)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the blocking query did not return within 20 s of the pool's removal")
	}
}

// Ensure a follower serves the change stream from its own applied
// state, and that killing the leader, home of the PEs, shows there as
// the member failing, a new leader, and each PE updated to its new home
// (reason takeover).
func TestCluster3_WatchTakeoverAtFollower(t *testing.T) {
	nodes := startCluster(t, 3, func(c *registrar.Config) {
		c.KeepAliveInterval = registrar.Duration(200 * time.Millisecond)
		c.KeepAliveTimeout = registrar.Duration(3 * time.Second)
	})
	victim := leaderOf(nodes)
	var watched *testRegistrar
	for _, r := range nodes {
		if r != victim {
			watched = r
			break
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan *watchclient.Event, 256)
	go func() {
		defer close(events)
		_, _ = watchclient.Stream(ctx, http.DefaultClient, "http://"+watched.HTTPAddr(), "", 0, false, func(e *watchclient.Event) error {
			events <- e
			return nil
		})
	}()
	if e := <-events; e == nil || e.Type != registrar.EventReady {
		t.Fatalf("first event %+v, want stream.ready", e)
	}
	pe := newASAPPE(t)
	cl := dial(t, victim, true)
	const n = 6
	for i := uint32(1); i <= n; i++ {
		mustRegister(t, cl, "pool", pe.element(i))
	}
	victimID := fmt.Sprintf("0x%08x", victim.ID())
	homes := map[string]string{}
	var failed, leader bool
	deadline := time.After(30 * time.Second)
	for done := false; !done; {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("the follower's stream ended")
			}
			switch {
			case e.Type == registrar.EventPERegistered:
				homes[e.PE.ID] = e.PE.Home
				if len(homes) == n {
					victim.Crash()
				}
			case e.Type == registrar.EventMemberFailed && e.Member.ID == victimID:
				failed = true
			case e.Type == registrar.EventLeader && e.Leader.ID != "" && e.Leader.ID != victimID:
				leader = true
			case e.Type == registrar.EventPEUpdated && e.Reason == "takeover":
				if e.PE.Home == victimID {
					t.Errorf("takeover event keeps %s at the dead registrar", e.PE.ID)
				}
				homes[e.PE.ID] = e.PE.Home
			}
			moved := 0
			for _, h := range homes {
				if h != victimID {
					moved++
				}
			}
			done = moved == n && failed && leader
		case <-deadline:
			t.Fatalf("after 30 s: member failure seen %v, new leader seen %v, PE homes %v (victim %s)", failed, leader, homes, victimID)
		}
	}
	for id, h := range homes {
		var v uint32
		fmt.Sscanf(id, "0x%x", &v)
		if got, ok := watched.Handlespace().Lookup("pool", v); !ok || fmt.Sprintf("0x%08x", got.Element.Home) != h {
			t.Errorf("PE %s: the stream says home %s, the handlespace %+v (%v)", id, h, got.Element.Home, ok)
		}
	}
}

// Ensure a snapshot restore shows in the stream as handlespace.reset
// (reason restore) and ends blocking queries on every pool, also one
// that only the restored state has.
func TestWatch_RestoreResets(t *testing.T) {
	r := startRegistrar(t, "", nil)
	base := "http://" + r.HTTPAddr()
	hs := r.Handlespace()
	ctx := context.Background()
	a := testPE(1, 7001, lu(1))
	a.Home = r.ID()
	if err := hs.Register(ctx, "kept", a); err != nil {
		t.Fatal(err)
	}
	snap := t.TempDir() + "/s.snap"
	if _, err := r.SaveSnapshot(snap); err != nil {
		t.Fatal(err)
	}
	if err := hs.Deregister(ctx, "kept", a); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, r)
	_, before, _ := getIndex(t, base+"/v1/pools/kept")
	polled := make(chan int, 1)
	go func() {
		code, _, _ := getIndex(t, fmt.Sprintf("%s/v1/pools/kept?index=%d&wait=30s", base, before))
		polled <- code
	}()
	events := make(chan *watchclient.Event, 16)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(events)
		_, _ = watchclient.Stream(sctx, http.DefaultClient, base, "", before, true, func(e *watchclient.Event) error {
			events <- e
			return nil
		})
	}()
	if _, err := hs.RestoreFile(ctx, snap); err != nil {
		t.Fatal(err)
	}
	for {
		var e *watchclient.Event
		select {
		case e = <-events:
		case <-time.After(15 * time.Second):
			t.Fatal("no handlespace.reset within 15 s of the restore")
		}
		if e == nil {
			t.Fatal("the stream ended before the reset")
		}
		if e.Type == registrar.EventReset {
			if e.Reason != "restore" || e.Index <= before {
				t.Errorf("reset event %+v: want reason restore after index %d", e, before)
			}
			break
		}
	}
	select {
	case code := <-polled:
		if code != http.StatusOK {
			t.Errorf("the blocking query on the restored pool answered %d, want 200 with its PE", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the blocking query on a pool the restore brought back did not return")
	}
}
