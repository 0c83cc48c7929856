package registrar

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/registrar/ui"
)

// Status is what GET /v1/status returns.
type Status struct {
	ID        string      `json:"id"`
	Version   string      `json:"version"`
	UptimeSec float64     `json:"uptime_seconds"`
	Addresses StatusAddrs `json:"addresses"`
	Raft      StatusRaft  `json:"raft"`
	Stale     bool        `json:"stale"` // no raft leader: resolutions come from the local copy
	// StorageFault is set while a file of the data dir cannot be written
	// (a full disk, an I/O error): writes are refused, resolutions are
	// served from memory.
	StorageFault *StatusFault `json:"storage_fault,omitempty"`
	Pools        int          `json:"pools"`
	PEs          int          `json:"pes"`
	OwnedPEs     int          `json:"owned_pes"`
	// FDLimit is the open file limit (every association is a file
	// descriptor), raised to the hard limit at start; 0 if unknown.
	FDLimit uint64       `json:"fd_limit"`
	Members []MemberInfo `json:"members,omitempty"`
}

// StatusFault describes a storage fault.
type StatusFault struct {
	Path  string    `json:"path"`  // the file that cannot be written
	Op    string    `json:"op"`    // what failed (commit, append, sync, set, ...)
	Error string    `json:"error"` // the I/O error
	Since time.Time `json:"since"`
	Fix   string    `json:"fix"` // what to do
}

// statusFault converts a storage fault (nil: none).
func statusFault(err error) *StatusFault {
	if err == nil {
		return nil
	}
	var f *cluster.FaultError
	if !errors.As(err, &f) {
		return &StatusFault{Error: err.Error()}
	}
	return &StatusFault{Path: f.Path, Op: f.Op, Error: f.Err.Error(), Since: f.Since.UTC(), Fix: f.Fix()}
}

// StatusAddrs lists the bound addresses.
type StatusAddrs struct {
	ASAP []string `json:"asap"`
	ENRP []string `json:"enrp"`
	// ASAPTLS and ENRPTLS are the TLS listeners ("tls:host:port").
	ASAPTLS []string `json:"asap_tls,omitempty"`
	ENRPTLS []string `json:"enrp_tls,omitempty"`
	HTTP    string   `json:"http,omitempty"`
	Raft    string   `json:"raft"`
}

// StatusRaft is the raft part of the status.
type StatusRaft struct {
	State        string `json:"state"`
	Leader       string `json:"leader,omitempty"`
	LeaderID     string `json:"leader_id,omitempty"`
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	AppliedIndex uint64 `json:"applied_index"`
}

// MemberInfo describes a cluster member (GET /v1/members).
type MemberInfo struct {
	Name   string `json:"name"`
	ID     string `json:"id"`
	Status string `json:"status"`
	Gossip string `json:"gossip"`
	Raft   string `json:"raft"`
	ASAP   string `json:"asap"`
	ENRP   string `json:"enrp"`
	HTTP   string `json:"http,omitempty"`
	Voter  bool   `json:"voter"`
	// Role is "voter", "non-voter" or "" (not in the raft configuration).
	Role   string `json:"role"`
	Leader bool   `json:"leader"`
}

// PoolSummary is one entry of GET /v1/pools.
type PoolSummary struct {
	Handle    asap.PoolHandle `json:"handle"`
	Policy    asap.PolicyType `json:"policy"`
	Transport string          `json:"transport"`
	PEs       int             `json:"pes"`
}

// PoolDetail is GET /v1/pools/{handle}.
type PoolDetail struct {
	Handle asap.PoolHandle `json:"handle"`
	Policy asap.PolicyType `json:"policy"`
	PEs    []PEInfo        `json:"pes"`
}

// PEInfo is one PE as the admin API shows it.
type PEInfo struct {
	ID         string           `json:"id"`
	Home       string           `json:"home"`
	Transport  string           `json:"transport"`
	Addresses  []netip.Addr     `json:"addresses"`
	Port       uint16           `json:"port"`
	Use        string           `json:"use"`
	Policy     asap.Policy      `json:"policy"`
	LifetimeMS uint32           `json:"lifetime_ms"`
	Registered time.Time        `json:"registered"`
	ASAP       *asap.Transport  `json:"asap_transport,omitempty"`
	Element    asap.PoolElement `json:"-"`
}

func hexID(id uint32) string { return fmt.Sprintf("0x%08x", id) }

// PEInfoOf converts a stored PE for display.
func PEInfoOf(pe cluster.PE) PEInfo {
	e := pe.Element
	info := PEInfo{
		ID: hexID(e.ID), Home: hexID(e.Home), Transport: e.User.Kind.String(), Addresses: e.User.Addrs,
		Port: e.User.Port, Use: "data", Policy: e.Policy, LifetimeMS: e.Lifetime,
		Registered: time.Unix(0, pe.Registered).UTC(), Element: e,
	}
	if e.User.Use == asap.UseDataAndControl {
		info.Use = "data+control"
	}
	if !e.ASAP.IsZero() {
		t := e.ASAP
		info.ASAP = &t
	}
	return info
}

func (r *Registrar) status() Status {
	s := Status{ID: hexID(r.id), Version: Version, UptimeSec: time.Since(r.start).Seconds(), FDLimit: r.fdLimit}
	s.Addresses.ASAP = specList(r.asapLn.Addrs())
	s.Addresses.ENRP = specList(r.enrpLn.Addrs())
	s.Addresses.HTTP = r.HTTPAddr()
	s.Addresses.ASAPTLS, s.Addresses.ENRPTLS = tlsList(r.asapTLSLn), tlsList(r.enrpTLSLn)
	s.Addresses.Raft = r.hs.RaftAddr()
	rs := r.hs.Status()
	s.Raft.State, s.Raft.Leader = rs.State, rs.LeaderAddr
	if rs.LeaderID != 0 {
		s.Raft.LeaderID = string(cluster.ServerID(rs.LeaderID))
	}
	s.Raft.Term, s.Raft.LastIndex = rs.Term, rs.LastIndex
	s.Raft.AppliedIndex = r.hs.LastApplied()
	s.Stale = rs.Stale()
	s.StorageFault = statusFault(r.hs.Fault())
	s.Pools, s.PEs = r.hs.Counts()
	s.Members = r.memberInfos()
	s.OwnedPEs = r.live.count()
	return s
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// APIError is the body of every error answer.
type APIError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, format string, a ...any) {
	writeJSON(w, code, APIError{Error: fmt.Sprintf(format, a...)})
}

// httpHandler serves the admin API:
//
//	GET /v1/status            registrar, raft and handlespace summary
//	GET /v1/pools             pools with policy and PE count
//	GET /v1/pools/{handle}    one pool with its PEs (0x-hex for binary handles);
//	                          ?index=N&wait=D: a blocking query (long-poll)
//	GET /v1/watch             the change stream (Server-Sent Events)
//	GET /metrics              Prometheus metrics
//
// Each route is mounted through guard with the role it needs (the read
// role for these; see clusterHandlers and snapshotHandlers for the
// others); the server wraps the whole handler in sameOrigin (refusals of
// cross-site requests, logged like guard's).
func (r *Registrar) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /v1/status", r.guard(RoleRead, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, r.status())
	}))
	mux.Handle("GET /v1/pools", r.guard(RoleRead, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set(HeaderIndex, strconv.FormatUint(r.watch.index(), 10))
		out := []PoolSummary{}
		for _, p := range r.hs.Pools() {
			out = append(out, PoolSummary{Handle: p.Handle, Policy: p.Policy, Transport: p.Transport.String(), PEs: p.PEs})
		}
		writeJSON(w, http.StatusOK, out)
	}))
	mux.Handle("GET /v1/pools/{handle}", r.guard(RoleRead, func(w http.ResponseWriter, req *http.Request) {
		var h asap.PoolHandle
		if err := h.UnmarshalText([]byte(req.PathValue("handle"))); err != nil || h == "" {
			writeError(w, http.StatusBadRequest, "pool handle %q: %v", req.PathValue("handle"), err)
			return
		}
		idx, err := r.poolLongPoll(req, h)
		if err != nil {
			writeError(w, http.StatusBadRequest, "%v", err)
			return
		}
		w.Header().Set(HeaderIndex, strconv.FormatUint(idx, 10))
		pes := r.hs.Pool(h)
		if len(pes) == 0 {
			writeError(w, http.StatusNotFound, "pool %q not found", h)
			return
		}
		d := PoolDetail{Handle: h, Policy: pes[0].Element.Policy.Type}
		for _, pe := range pes {
			d.PEs = append(d.PEs, PEInfoOf(pe))
		}
		writeJSON(w, http.StatusOK, d)
	}))
	mux.Handle("GET /v1/watch", r.guard(RoleRead, r.serveWatch))
	if r.cfg.UI {
		// The page's own files: public (a browser cannot send a token
		// when it navigates); the data it reads needs the read role.
		mux.Handle("GET /ui/", http.StripPrefix("/ui/", ui.Handler()))
		mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	}
	mux.Handle("GET /metrics", r.guard(RoleRead, promhttp.HandlerFor(r.metrics.gatherers(), promhttp.HandlerOpts{}).ServeHTTP))
	if r.cfg.EnableDebug {
		mux.Handle("/debug/pprof/", r.guard(RoleOperator, pprof.Index))
		mux.Handle("/debug/pprof/cmdline", r.guard(RoleOperator, pprof.Cmdline))
		mux.Handle("/debug/pprof/profile", r.guard(RoleOperator, pprof.Profile))
		mux.Handle("/debug/pprof/symbol", r.guard(RoleOperator, pprof.Symbol))
		mux.Handle("/debug/pprof/trace", r.guard(RoleOperator, pprof.Trace))
	}
	r.clusterHandlers(mux)
	r.snapshotHandlers(mux)
	r.keyringHandlers(mux)
	return mux
}
