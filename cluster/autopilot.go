package cluster

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Autopilot is how the leader judges a non-voter ready to be promoted,
// after Consul's autopilot: a server is healthy while its last contact
// with the leader is within LastContactThreshold, its log trails the
// leader's by at most MaxTrailingLogs entries, and it is on the leader's
// term; it is promoted once it has been healthy for StabilizationTime.
type Autopilot struct {
	LastContactThreshold time.Duration // default 200 ms (Consul's)
	MaxTrailingLogs      uint64        // default 250 (Consul's)
	StabilizationTime    time.Duration // default 10 s (Consul's); 2 s in the local profile
}

// MaxVoters is the most voters a cluster may keep (more slow every
// commit down and add little: 7 voters survive 3 failures).
const MaxVoters = 7

// DefaultVoters is how many voters a cluster keeps unless configured.
const DefaultVoters = 3

// peerStatus is a registrar's raft progress, as it reports it to the
// leader on the forwarded-write connection.
type peerStatus struct {
	Term        uint64        `json:"term"`
	LastIndex   uint64        `json:"last_index"`
	LastContact time.Duration `json:"last_contact"` // since the leader last reached it; -1: never
}

// localStatus is this node's raft progress.
func (n *Node) localStatus() peerStatus {
	st := peerStatus{Term: n.raft.CurrentTerm(), LastIndex: n.raft.LastIndex(), LastContact: -1}
	if n.IsLeader() {
		st.LastContact = 0
	} else if t := n.raft.LastContact(); !t.IsZero() {
		st.LastContact = time.Since(t)
	}
	return st
}

// writeStatus answers a status request (an empty forwarded write).
func (n *Node) writeStatus(c net.Conn) error {
	out, _ := json.Marshal(n.localStatus())
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(out))), out...))
	return err
}

// peerStatusOf asks the registrar at raft address addr for its status.
func (n *Node) peerStatusOf(addr string, timeout time.Duration) (peerStatus, error) {
	var st peerStatus
	c, err := n.fwd.dial(addr, timeout)
	if err != nil {
		return st, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{0, 0, 0, 0}); err != nil {
		return st, err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return st, err
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size > 4096 {
		return st, fmt.Errorf("status of %s: %d bytes", addr, size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(c, body); err != nil {
		return st, err
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("status of %s: %v", addr, err)
	}
	return st, nil
}

// healthy reports whether a peer's status passes the autopilot checks
// against the leader's term and last index, and why not.
func (a Autopilot) healthy(st peerStatus, term, lastIndex uint64) error {
	switch {
	case st.Term != term:
		return fmt.Errorf("on term %d, the leader on %d", st.Term, term)
	case st.LastContact < 0 || st.LastContact > a.LastContactThreshold:
		return fmt.Errorf("last contact with the leader %v ago (threshold %v)", st.LastContact, a.LastContactThreshold)
	case lastIndex > st.LastIndex && lastIndex-st.LastIndex > a.MaxTrailingLogs:
		return fmt.Errorf("log at %d, the leader's at %d (at most %d behind)", st.LastIndex, lastIndex, a.MaxTrailingLogs)
	}
	return nil
}

// healthTracker remembers since when each non-voter has been healthy; it
// belongs to the reconcile loop.
type healthTracker struct {
	since map[raft.ServerID]time.Time
}

// observe asks every alive non-voter for its status (in parallel, each
// bounded by a second) and returns how long each healthy one has been so.
func (h *healthTracker) observe(n *Node, cfg Autopilot, servers []raft.Server, members []Member, now time.Time) map[raft.ServerID]time.Duration {
	if h.since == nil {
		h.since = map[raft.ServerID]time.Time{}
	}
	alive := map[uint32]bool{}
	for _, m := range members {
		if m.Status == StatusAlive {
			alive[m.Meta.ID] = true
		}
	}
	type result struct {
		id  raft.ServerID
		err error
	}
	term, lastIndex := n.raft.CurrentTerm(), n.raft.LastIndex()
	var (
		mu  sync.Mutex
		res []result
		wg  sync.WaitGroup
	)
	for _, s := range servers {
		id, err := ParseServerID(s.ID)
		if err != nil || s.Suffrage != raft.Nonvoter || !alive[id] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := n.peerStatusOf(string(s.Address), time.Second)
			if err == nil {
				err = cfg.healthy(st, term, lastIndex)
			}
			mu.Lock()
			res = append(res, result{s.ID, err})
			mu.Unlock()
		}()
	}
	wg.Wait()
	out := map[raft.ServerID]time.Duration{}
	seen := map[raft.ServerID]bool{}
	for _, r := range res {
		seen[r.id] = true
		if r.err != nil {
			if !h.since[r.id].IsZero() {
				n.log.Info("non-voter unhealthy", "id", r.id, "reason", r.err)
			}
			delete(h.since, r.id)
			continue
		}
		if h.since[r.id].IsZero() {
			h.since[r.id] = now
		}
		out[r.id] = now.Sub(h.since[r.id])
	}
	for id := range h.since {
		if !seen[id] {
			delete(h.since, id)
		}
	}
	return out
}
