package registrar

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rserpool-go/registrar/cluster"
)

// RaftPeer is one entry of GET /v1/raft/peers.
type RaftPeer struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"` // raft's name: Voter, Nonvoter
	Role     string `json:"role"`     // voter or non-voter
	Leader   bool   `json:"leader"`
	Alive    bool   `json:"alive"`
}

func (r *Registrar) memberInfos() []MemberInfo {
	var out []MemberInfo
	roles := map[uint32]string{}
	if servers, err := r.hs.Servers(); err == nil {
		for _, s := range servers {
			roles[s.ID] = roleName(s.Suffrage)
		}
	}
	leader := r.hs.Status().LeaderID
	for _, m := range r.hs.Members() {
		out = append(out, MemberInfo{Name: m.Name, ID: hexID(m.Meta.ID), Status: m.Status.String(), Gossip: m.Addr,
			Raft: m.Meta.Raft, ASAP: strings.Join(m.Meta.ASAP, ","), ENRP: strings.Join(m.Meta.ENRP, ","),
			HTTP: m.Meta.HTTP, Voter: roles[m.Meta.ID] == "voter", Role: roles[m.Meta.ID], Leader: m.Meta.ID == leader})
	}
	return out
}

func (r *Registrar) raftPeers() ([]RaftPeer, error) {
	servers, err := r.hs.Servers()
	if err != nil {
		return nil, err
	}
	alive := map[uint32]bool{}
	for _, m := range r.hs.Members() {
		if m.Status == cluster.StatusAlive {
			alive[m.Meta.ID] = true
		}
	}
	leader := r.hs.Status().LeaderID
	var out []RaftPeer
	for _, s := range servers {
		out = append(out, RaftPeer{ID: hexID(s.ID), Address: s.Address, Suffrage: s.Suffrage.String(), Role: roleName(s.Suffrage),
			Leader: s.ID == leader, Alive: alive[s.ID]})
	}
	return out, nil
}

// roleName is how the admin API and the CLI name a raft suffrage.
func roleName(s cluster.Suffrage) string {
	switch s {
	case cluster.Voter:
		return "voter"
	case cluster.Nonvoter:
		return "non-voter"
	}
	return s.String()
}

// leaderHTTP is the admin API address of the raft leader, from gossip.
func (r *Registrar) leaderHTTP() (addr string, leader uint32) {
	leader = r.hs.Status().LeaderID
	if leader == 0 {
		return "", 0
	}
	for _, m := range r.hs.Members() {
		if m.Meta.ID == leader {
			return m.Meta.HTTP, leader
		}
	}
	return "", leader
}

// leaderHold is how long a request for the leader waits while none is
// known (an election) before it is refused.
const leaderHold = 7 * time.Second

// newLeaderClient is the client for proxied admin requests to the
// leader (the incoming request's context bounds them): HTTPS with this
// registrar's certificate when it has TLS, the leader's checked as a
// registrar certificate of the CA.
func (r *Registrar) newLeaderClient() *http.Client {
	tr := &http.Transport{ResponseHeaderTimeout: 10 * time.Minute}
	if r.tls != nil {
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := &tls.Dialer{Config: r.tls.PeerClientConfig()}
			return d.DialContext(ctx, network, addr)
		}
	}
	return &http.Client{Transport: tr}
}

// adminScheme is the admin API's URL scheme.
func (r *Registrar) adminScheme() string {
	if r.tls != nil {
		return "https://"
	}
	return "http://"
}

// headerNotLeader marks a 503 from a registrar that was asked as the
// leader but no longer is: the registrar that forwarded the request asks
// the new leader.
const headerNotLeader = "X-Registrar-Not-Leader"

// proxyToLeader forwards an admin request that only the leader can carry
// out (a snapshot save or restore, a raft peer removal), streaming both
// ways; it returns false when this node is the leader. A request that was
// proxied once is not proxied again. While no leader is known (an
// election), and when the registrar it asked turns out to have lost the
// lead, the request is held for up to leaderHold (as Consul holds RPCs)
// and sent to the leader once there is one; a request with a body is
// sent once, since the body is consumed.
func (r *Registrar) proxyToLeader(w http.ResponseWriter, req *http.Request) bool {
	if r.hs.IsLeader() {
		return false
	}
	if req.Header.Get(headerProxied) != "" {
		w.Header().Set(headerNotLeader, "1")
		writeError(w, http.StatusServiceUnavailable, "this registrar is not the raft leader (any more): try again when `registrar status` shows a leader")
		return true
	}
	resend := req.ContentLength == 0
	deadline := time.Now().Add(leaderHold)
	for {
		if addr, leader := r.leaderHTTP(); addr != "" {
			resp, err := r.forward(req, addr, req.Body, req.ContentLength)
			again := resend && (err != nil || resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get(headerNotLeader) != "")
			if !again || time.Now().After(deadline) {
				r.relay(w, req, addr, resp, err)
				return true
			}
			if resp != nil { // nil when the leader could not be reached
				resp.Body.Close()
			} else if err := r.hs.SyncMember(leader); err != nil {
				// Its admin address may be stale (it restarted on the same
				// gossip address): ask its gossip for its current one.
				r.log.Debug("cannot sync gossip with the leader", "leader", hexID(leader), "error", err)
			}
		}
		if time.Now().After(deadline) {
			writeError(w, http.StatusServiceUnavailable, "no raft leader (or its admin API address is unknown) for %v: try again when `registrar status` shows a leader", leaderHold)
			return true
		}
		select {
		case <-req.Context().Done():
			writeError(w, http.StatusServiceUnavailable, "request canceled while waiting for a raft leader")
			return true
		case <-time.After(50 * time.Millisecond):
		}
		if r.hs.IsLeader() {
			return false
		}
	}
}

// forwardTo sends req, with body, to the admin API at addr (marked as
// proxied, so that it goes no further) and relays the answer.
func (r *Registrar) forwardTo(w http.ResponseWriter, req *http.Request, addr string, body io.Reader, length int64) {
	resp, err := r.forward(req, addr, body, length)
	r.relay(w, req, addr, resp, err)
}

// forward sends req with body to the admin API at addr, marked as
// proxied. The caller closes the answer's body (relay does).
func (r *Registrar) forward(req *http.Request, addr string, body io.Reader, length int64) (*http.Response, error) {
	out, err := http.NewRequestWithContext(req.Context(), req.Method, r.adminScheme()+addr+req.URL.Path, body)
	if err != nil {
		return nil, err
	}
	out.ContentLength = length
	out.Header.Set(headerProxied, hexID(r.id))
	for _, h := range []string{"Content-Type", "Authorization"} {
		if v := req.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	resp, err := r.leaderClient.Do(out)
	if err != nil {
		return nil, fmt.Errorf("leader at %s: %w", addr, err)
	}
	return resp, nil
}

// relay writes what forward got back to w.
func (r *Registrar) relay(w http.ResponseWriter, req *http.Request, addr string, resp *http.Response, err error) {
	if err != nil {
		writeError(w, http.StatusBadGateway, "%v", err)
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Content-Length", HeaderSnapshotIndex, HeaderSnapshotPools, HeaderSnapshotPEs} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil {
		r.log.Warn("proxied admin request aborted", "leader", addr, "path", req.URL.Path, "error", err)
	}
}

// clusterHandlers serves:
//
//	GET    /v1/members            registrars as gossip sees them, with raft roles
//	POST   /v1/leave              this registrar leaves the cluster and stops
//	GET    /v1/enrp/peers         ENRP peers outside the cluster
//	GET    /v1/raft/peers         the raft configuration
//	DELETE /v1/raft/peers/{id}    remove a raft server (done by the leader)
func (r *Registrar) clusterHandlers(mux *http.ServeMux) {
	mux.Handle("GET /v1/members", r.guard(RoleRead, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, r.memberInfos())
	}))
	mux.Handle("POST /v1/leave", r.guard(RoleOperator, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusAccepted, map[string]string{"result": "leaving: the registrar leaves the cluster and stops"})
		r.Leave()
	}))
	mux.Handle("GET /v1/enrp/peers", r.guard(RoleRead, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, r.peers.list())
	}))
	mux.Handle("GET /v1/raft/peers", r.guard(RoleRead, func(w http.ResponseWriter, _ *http.Request) {
		peers, err := r.raftPeers()
		if err != nil {
			writeError(w, http.StatusInternalServerError, "%v", err)
			return
		}
		writeJSON(w, http.StatusOK, peers)
	}))
	mux.Handle("DELETE /v1/raft/peers/{id}", r.guard(RoleOperator, func(w http.ResponseWriter, req *http.Request) {
		id := strings.TrimPrefix(strings.ToLower(req.PathValue("id")), "0x")
		var v uint32
		if _, err := fmt.Sscanf(id, "%x", &v); err != nil || len(id) == 0 || len(id) > 8 {
			writeError(w, http.StatusBadRequest, "raft peer id %q: want the registrar ID in hex", req.PathValue("id"))
			return
		}
		if r.proxyToLeader(w, req) {
			return
		}
		sid := cluster.ServerID(v)
		switch err := r.hs.RemovePeer(v); {
		case errors.Is(err, cluster.ErrUnknownPeer):
			writeError(w, http.StatusNotFound, "raft peer 0x%s is not in the configuration", sid)
			return
		case err != nil:
			writeError(w, http.StatusInternalServerError, "remove 0x%s: %v", sid, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"result": "removed 0x" + string(sid)})
	}))
}
