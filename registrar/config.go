package registrar

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/csp"
	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/transport"
)

// Version is the build version (set with -ldflags -X).
var Version = "dev"

// Duration is a time.Duration that reads and writes "5s" in JSON.
type Duration time.Duration

// MarshalText writes the duration as text ("5s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a Go duration ("1.5s", "250ms").
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Config is the whole registrar configuration. Flags and the config file
// (JSON, the same names as the flags with underscores) fill it; see
// docs/configuration.md. Durations are written like "5s".
type Config struct {
	// DataDir holds the handlespace, the raft state and the registrar's
	// identity. Default ./registrar-data.
	DataDir string `json:"data_dir"`
	// ID is the 32-bit registrar (ENRP server) ID; 0 means "the one in the
	// data dir, or a new random one saved there".
	ID uint32 `json:"id"`
	// ASAP is where PEs and PUs reach the registrar: [tcp:|sctp:]host:port,
	// no prefix = SCTP and TCP both. Default 127.0.0.1:3863.
	ASAP string `json:"asap"`
	// ENRP is where other registrars reach it. Default 127.0.0.1:9901.
	ENRP string `json:"enrp"`
	// ASAPTLS and ENRPTLS are optional TLS listeners (host:port, TCP with
	// TLS; IANA's asap-tls port is 3864, enrp-tls 9902), beside ASAP and
	// ENRP; "off" (the default) has none. They need the TLS files; the
	// ENRP one accepts only registrar certificates of the CA.
	ASAPTLS string `json:"asap_tls"`
	ENRPTLS string `json:"enrp_tls"`
	// HTTP is the admin API and /metrics. Default 127.0.0.1:8863; "off"
	// disables it.
	HTTP string `json:"http"`
	// LogLevel is trace, debug, info, warn or error. Default info.
	LogLevel string `json:"log_level"`
	// LogJSON writes logs as JSON lines.
	LogJSON bool `json:"log_json"`
	// LogFile, when set, is where the logs go instead of standard error,
	// rotated (by lumberjack) once it grows past LogFileMaxSize megabytes;
	// LogFileMaxBackups rotated files are kept. Defaults 100 and 5.
	LogFile           string `json:"log_file"`
	LogFileMaxSize    int    `json:"log_file_max_size"`
	LogFileMaxBackups int    `json:"log_file_max_backups"`
	// MetricsPoolTop bounds the per-pool PE count metric (rsp_pool_pes)
	// to the pools with the most PEs. Default 20; 0 turns it off.
	MetricsPoolTop int `json:"metrics_pool_top"`

	// Announce is the ASAP SERVER_ANNOUNCE multicast group:port, or "off".
	// Default: off when the ASAP address is loopback, else 239.0.0.50:3863.
	Announce string `json:"announce"`
	// AnnounceInterval is the period of announces (T6). Default 1s.
	AnnounceInterval Duration `json:"announce_interval"`
	// AnnounceTTL is the multicast TTL. Default 1 (the local network).
	AnnounceTTL int `json:"announce_ttl"`
	// AnnounceInterface names the interface to send on (default: routing).
	AnnounceInterface string `json:"announce_interface"`

	// KeepAliveInterval is how often the registrar checks each PE it is
	// home for (ENDPOINT_KEEP_ALIVE). Default 5s, as RSPLIB.
	KeepAliveInterval Duration `json:"keepalive_interval"`
	// KeepAliveTimeout is how long it waits for the ACK before removing
	// the PE. Default 5s.
	KeepAliveTimeout Duration `json:"keepalive_timeout"`
	// PEConnLoss is what happens to a PE this registrar is home for when
	// the association (or TCP connection) it registered on is lost:
	// "probe" (default) sends it a keep-alive at once, at its ASAP
	// endpoint, and removes it only when no ACK comes within
	// KeepAliveTimeout (a PE that is alive, whose connection a middlebox
	// or a path failure ended, stays registered); "remove" removes it at
	// once, as RSPLIB's registrar does.
	PEConnLoss string `json:"pe_conn_loss"`
	// MaxBadPEReports is how many ENDPOINT_UNREACHABLE reports remove a
	// PE. Default 3.
	MaxBadPEReports int `json:"max_bad_pe_reports"`
	// MaxHResItems is how many PEs a handle resolution returns when the
	// PU does not say. Default 3.
	MaxHResItems int `json:"max_hres_items"`
	// MaxHResItemsCap bounds what a PU may ask for. Default 128.
	MaxHResItemsCap int `json:"max_hres_items_cap"`
	// AllowForeignAddresses keeps user transport addresses that do not
	// belong to the registering PE's connection. Default false: they are
	// dropped, and a registration with none left is refused.
	AllowForeignAddresses bool `json:"allow_foreign_addresses"`
	// ResolutionRate limits handle resolutions per ASAP connection per
	// second (0 = no limit); ResolutionBurst is the burst. Beyond them a
	// resolution is dropped unanswered. Defaults 1000 and 1000: far above
	// what a PU asks (RSPLIB's resolve per new session or failover).
	ResolutionRate  float64 `json:"resolution_rate"`
	ResolutionBurst int     `json:"resolution_burst"`
	// UnreachableRate limits ENDPOINT_UNREACHABLE reports per ASAP
	// connection per second (0 = no limit); UnreachableBurst is the burst.
	// Defaults 10 and 10.
	UnreachableRate  float64 `json:"unreachable_rate"`
	UnreachableBurst int     `json:"unreachable_burst"`
	// MessageRate limits the ASAP messages one connection may send per
	// second, whatever they are (0 = no limit), with a burst of one
	// second's worth (at least 1); beyond it messages are dropped.
	// Default 0: the resolution and report limits cover the expensive
	// ones.
	MessageRate float64 `json:"message_rate"`
	// MaxConnections caps the accepted ASAP and ENRP connections (0: only
	// the file descriptor limit less a reserve of 256); beyond it a new
	// connection is closed at once. Default 0.
	MaxConnections int `json:"max_connections"`
	// MaxConnectionsPerAddress caps them per source address (0: none).
	// Default 512.
	MaxConnectionsPerAddress int `json:"max_connections_per_address"`
	// MaxPEsPerConnection caps the PEs registered through one ASAP
	// connection (0: none); beyond it a registration is refused with lack
	// of resources. Default 1000.
	MaxPEsPerConnection int `json:"max_pes_per_connection"`
	// MaxPoolHandle is the longest pool handle accepted, in bytes.
	// Default 32 (RSPLIB aborts on longer ones).
	MaxPoolHandle int `json:"max_pool_handle"`
	// ConnIdleTimeout closes ASAP connections that send nothing for this
	// long (PEs answer keep-alives, so a live PE is never idle that long).
	// Default 300s, as RSPLIB's auto-close.
	ConnIdleTimeout Duration `json:"conn_idle_timeout"`
	// ConnParkAfter parks an ASAP connection (plain TCP, on Linux) that
	// has sent nothing for about this long: it keeps its state but gives
	// up its reading goroutine until it has something to read again, so
	// an idle connection costs a few KiB instead of a goroutine stack.
	// Checked every ConnParkAfter; 0: never park. Default 500ms.
	ConnParkAfter Duration `json:"conn_park_after"`

	// Cluster settings.
	Profile       string `json:"profile"` // lan or local
	Raft          string `json:"raft"`    // raft bind address
	RaftAdvertise string `json:"raft_advertise"`
	// Gossip is the memberlist address (default 127.0.0.1:7946).
	Gossip          string `json:"gossip"`
	GossipAdvertise string `json:"gossip_advertise"`
	// NodeName is the gossip name (default registrar-<id hex>).
	NodeName string `json:"node_name"`
	// Join lists seed gossip addresses, retried every RetryJoinInterval
	// (doubling, up to 30 s) until one answers.
	Join              []string `json:"join"`
	RetryJoinInterval Duration `json:"retry_join_interval"`
	// BootstrapExpect forms a new cluster once that many registrars see
	// each other (none with raft state). Without it and without Join, a
	// new registrar bootstraps a one-node cluster.
	BootstrapExpect int `json:"bootstrap_expect"`
	// Voters is how many raft voters the cluster keeps (1 to 7, default
	// 3); every further registrar is a non-voter that replicates, serves
	// and forwards writes, and replaces a voter that fails. The leader's
	// setting counts.
	Voters int `json:"voters"`
	// Encrypt is the base64 gossip encryption key (16, 24 or 32 bytes).
	Encrypt string `json:"encrypt"`
	// LeaveOnTerminate makes SIGINT/SIGTERM a graceful leave (the cluster
	// removes this registrar and takes over its PEs at once) instead of a
	// plain stop (the registrar stays a member and may come back).
	LeaveOnTerminate  bool     `json:"leave_on_terminate"`
	SnapshotInterval  Duration `json:"snapshot_interval"`
	SnapshotThreshold uint64   `json:"snapshot_threshold"`
	SnapshotRetain    int      `json:"snapshot_retain"`
	TrailingLogs      uint64   `json:"trailing_logs"`
	// WriteTimeout bounds how long a registration waits for the raft
	// commit (for a leader, e.g. during an election) before it is refused
	// so the PE can try another registrar. Default 5s.
	WriteTimeout Duration `json:"write_timeout"`

	// ENRP peering with registrars outside the cluster (RSPLIB's, ...).
	// ENRPPeers are static peers' ENRP addresses.
	ENRPPeers []string `json:"enrp_peers"`
	// ENRPPeerNetworks are networks (CIDR prefixes) whose registrars are
	// accepted as ENRP peers without being configured, and the only ones
	// multicast discovery learns peers from. Default none: only static
	// peers (and those they list from these networks).
	ENRPPeerNetworks []string `json:"enrp_peer_networks"`
	// ENRPAnnounce is the multicast group:port for ENRP_PRESENCE, or off.
	// Default: off when the ENRP address is loopback, else
	// 239.0.0.51:9901.
	ENRPAnnounce string `json:"enrp_announce"`
	// ENRPTakeoverSuggestion honours the T bit of a peer's HANDLE_UPDATE
	// (draft-dreibholz-rserpool-enrp-takeover, RSPLIB's
	// -supporttakeoversuggestion): the peer, home of the PE, suggests that
	// we take it over, and we claim it with an ENDPOINT_KEEP_ALIVE with
	// the H bit at the PE's ASAP endpoint. RFC 5353 reserves the bit
	// (ignored on receipt), as does RSPLIB by default. Default false.
	ENRPTakeoverSuggestion bool `json:"enrp_takeover_suggestion"`
	// PeerHeartbeat is the PRESENCE period to each peer (RSPLIB 2.444s,
	// jittered by 12.5 %).
	PeerHeartbeat Duration `json:"peer_heartbeat"`
	// MaxTimeLastHeard is the silence after which a peer is probed with
	// PRESENCE R=1; MaxTimeNoResponse how long the probe may go
	// unanswered before the peer counts as dead (RSPLIB 5s and 5s).
	MaxTimeLastHeard  Duration `json:"max_time_last_heard"`
	MaxTimeNoResponse Duration `json:"max_time_no_response"`
	// TakeoverExpiry is how long INIT_TAKEOVER_ACKs are collected (RSPLIB
	// 5s).
	TakeoverExpiry Duration `json:"takeover_expiry"`
	// MentorTimeout bounds the ENRP start-up phase (RFC 5353 section
	// 3.3): a registrar with ENRP peers (static, or by multicast) asks
	// the first peer that answers, its mentor, for the whole handle table
	// (W=0) and serves ASAP only once it has it, or when this time is up.
	// 0 skips the phase. Default 5s (RSPLIB's mentor discovery timeout).
	MentorTimeout Duration `json:"mentor_timeout"`

	// CommitDelay groups the handlespace file's commits: applied changes
	// reach the file (with fsync) at most this long after they were
	// applied. Acknowledged writes are durable in the raft log before they
	// are answered, and a restart replays the log after the file's applied
	// index, so nothing is lost; 0 commits every batch on its own (slower
	// in a cluster). Default 10ms.
	CommitDelay Duration `json:"commit_delay"`

	// UI serves the web dashboard at /ui/ on the admin API. Default on.
	UI bool `json:"ui"`
	// WatchHistory is how many change stream events the registrar keeps
	// for clients that resume (GET /v1/watch?index=N); a client whose
	// index is older is told to resync. Default 10000.
	WatchHistory int `json:"watch_history"`

	// EnableDebug serves Go's pprof profiles on the admin API under
	// /debug/pprof/ (operator role).
	EnableDebug bool `json:"enable_debug"`

	// Security (docs/security.md). TLSCertFile and TLSKeyFile are this
	// registrar's certificate and key (PEM), TLSCAFile the cluster's CA:
	// with them the admin API is HTTPS and the raft port (raft and
	// forwarded writes) mutual TLS between registrar certificates of the
	// CA. Reloaded on SIGHUP (new handshakes use the new files).
	TLSCertFile string `json:"tls_cert_file"`
	TLSKeyFile  string `json:"tls_key_file"`
	TLSCAFile   string `json:"tls_ca_file"`
	// VerifyIncoming makes the admin API require a client certificate of
	// the CA (the raft port always requires a registrar certificate).
	VerifyIncoming bool `json:"verify_incoming"`
	// VerifyOutgoing checks the certificates of the registrars this one
	// dials (raft, forwarded writes, the leader's admin API) against the
	// CA. Default true; false still uses TLS but does not check the
	// server (a migration aid, warned about at every start).
	VerifyOutgoing bool `json:"verify_outgoing"`
	// HTTPTokensFile is a JSON file of admin API tokens, each with a name
	// and a role (read, write, operator); empty: no tokens (every request
	// is allowed, which only a loopback admin API or Insecure permits).
	// Reloaded on SIGHUP.
	HTTPTokensFile string `json:"http_tokens_file"`
	// Insecure lets the admin API, raft and gossip listen on non-loopback
	// addresses without TLS, tokens or a gossip key (warned about at every
	// start).
	Insecure bool `json:"insecure"`
	// MaxSnapshotSize bounds a snapshot upload (PUT /v1/snapshot), in
	// bytes. Default 2 GiB (a 10-million-PE handlespace is about 0.7 GB).
	MaxSnapshotSize int64 `json:"max_snapshot_size"`

	// CSPServer is the host:port of an RSPLIB Component Status Protocol
	// monitor (cspmonitor; port 2960 when left out) that the registrar
	// reports its status to every CSPInterval; empty: no reports.
	CSPServer   string   `json:"csp_server"`
	CSPInterval Duration `json:"csp_interval"`

	// DistanceStep rounds the distance the registrar measures to a PE of a
	// distance-sensitive policy (half the round-trip time of its
	// association) to a multiple of itself. Default 50ms, as RSPLIB.
	DistanceStep Duration `json:"distance_step"`

	// NoSync skips fsync of the stores (tests only: loses durability).
	NoSync bool `json:"-"`
	// Logger overrides the logger built from LogLevel/LogJSON.
	Logger hclog.Logger `json:"-"`
	// Network overrides the transport (tests use transport.NewMemNetwork).
	Network transport.Network `json:"-"`
}

// PEConnLoss values.
const (
	PEConnLossProbe  = "probe"
	PEConnLossRemove = "remove"
)

// DefaultConfig returns the defaults of every field.
func DefaultConfig() Config {
	return Config{
		DataDir:                  "./registrar-data",
		ASAP:                     "127.0.0.1:3863",
		ENRP:                     "127.0.0.1:9901",
		ASAPTLS:                  "off",
		ENRPTLS:                  "off",
		HTTP:                     "127.0.0.1:8863",
		LogLevel:                 "info",
		LogFileMaxSize:           100,
		LogFileMaxBackups:        5,
		MetricsPoolTop:           20,
		AnnounceInterval:         Duration(time.Second),
		AnnounceTTL:              1,
		KeepAliveInterval:        Duration(5 * time.Second),
		KeepAliveTimeout:         Duration(5 * time.Second),
		MaxBadPEReports:          3,
		PEConnLoss:               PEConnLossProbe,
		MaxHResItems:             3,
		MaxHResItemsCap:          128,
		ResolutionRate:           1000,
		ResolutionBurst:          1000,
		UnreachableRate:          10,
		UnreachableBurst:         10,
		MaxPoolHandle:            asap.DefaultMaxPoolHandle,
		MaxConnectionsPerAddress: 512,
		MaxPEsPerConnection:      1000,
		ConnIdleTimeout:          Duration(300 * time.Second),
		ConnParkAfter:            Duration(500 * time.Millisecond),
		Profile:                  cluster.ProfileLAN,
		Voters:                   cluster.DefaultVoters,
		Raft:                     "127.0.0.1:7947",
		Gossip:                   "127.0.0.1:7946",
		RetryJoinInterval:        Duration(time.Second),
		SnapshotInterval:         Duration(120 * time.Second),
		SnapshotThreshold:        8192,
		SnapshotRetain:           2,
		TrailingLogs:             10240,
		WriteTimeout:             Duration(5 * time.Second),
		PeerHeartbeat:            Duration(2444 * time.Millisecond),
		MaxTimeLastHeard:         Duration(5 * time.Second),
		MaxTimeNoResponse:        Duration(5 * time.Second),
		TakeoverExpiry:           Duration(5 * time.Second),
		MentorTimeout:            Duration(5 * time.Second),
		CommitDelay:              Duration(10 * time.Millisecond),
		CSPInterval:              Duration(time.Second),
		DistanceStep:             Duration(50 * time.Millisecond),
		VerifyOutgoing:           true,
		MaxSnapshotSize:          2 << 30,
		UI:                       true,
		WatchHistory:             DefaultWatchHistory,
	}
}

// raftConfig builds the cluster's raft settings.
func (c *Config) raftConfig() cluster.RaftConfig {
	r := cluster.DefaultRaftConfig(c.Profile)
	r.Bind = c.Raft
	r.Advertise = c.RaftAdvertise
	r.SnapshotInterval = c.SnapshotInterval.D()
	r.SnapshotThreshold = c.SnapshotThreshold
	r.SnapshotRetain = c.SnapshotRetain
	r.TrailingLogs = c.TrailingLogs
	r.ApplyTimeout = c.WriteTimeout.D()
	return r
}

// membershipConfig builds the gossip settings (without the key).
func (c *Config) membershipConfig() cluster.MembershipConfig {
	m := cluster.DefaultMembershipConfig(c.Profile)
	m.NodeName = c.NodeName
	m.Bind = c.Gossip
	m.Advertise = c.GossipAdvertise
	m.Join = c.Join
	m.RetryInterval = c.RetryJoinInterval.D()
	m.BootstrapExpect = c.BootstrapExpect
	m.Voters = c.Voters
	m.DataDir = c.DataDir
	return m
}

// Validate checks every field and returns all problems at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, &ConfigError{Key: field, Msg: fmt.Sprintf(format, a...)})
	}
	if strings.TrimSpace(c.DataDir) == "" {
		bad("data_dir", "must not be empty")
	}
	if _, err := transport.ParseSpec(c.ASAP); err != nil {
		bad("asap", "%v", err)
	}
	if _, err := transport.ParseSpec(c.ENRP); err != nil {
		bad("enrp", "%v", err)
	}
	if c.HTTP != "off" {
		if _, _, err := net.SplitHostPort(c.HTTP); err != nil {
			bad("http", "%q is not host:port or off: %v", c.HTTP, err)
		}
	}
	if hclog.LevelFromString(c.LogLevel) == hclog.NoLevel {
		bad("log_level", "%q is not one of trace, debug, info, warn, error", c.LogLevel)
	}
	if c.LogFileMaxSize < 1 {
		bad("log_file_max_size", "%d must be at least 1 (megabytes)", c.LogFileMaxSize)
	}
	if c.LogFileMaxBackups < 0 {
		bad("log_file_max_backups", "%d is negative (0 keeps every rotated file)", c.LogFileMaxBackups)
	}
	if c.MetricsPoolTop < 0 || c.MetricsPoolTop > 1000 {
		bad("metrics_pool_top", "%d is outside [0, 1000] (0 = no per-pool metric)", c.MetricsPoolTop)
	}
	if c.Announce != "" {
		if _, err := transport.ParseMulticastSpec(c.Announce); err != nil {
			bad("announce", "%v", err)
		}
	}
	if c.AnnounceInterval.D() < 10*time.Millisecond || c.AnnounceInterval.D() > time.Minute {
		bad("announce_interval", "%v is outside [10ms, 1m]", c.AnnounceInterval.D())
	}
	if c.AnnounceTTL < 1 || c.AnnounceTTL > 255 {
		bad("announce_ttl", "%d is outside [1, 255]", c.AnnounceTTL)
	}
	if c.KeepAliveInterval.D() < 10*time.Millisecond {
		bad("keepalive_interval", "%v is below 10ms", c.KeepAliveInterval.D())
	}
	if c.KeepAliveTimeout.D() < 10*time.Millisecond {
		bad("keepalive_timeout", "%v is below 10ms", c.KeepAliveTimeout.D())
	}
	if c.PEConnLoss != PEConnLossProbe && c.PEConnLoss != PEConnLossRemove {
		bad("pe_conn_loss", "%q is neither %q nor %q", c.PEConnLoss, PEConnLossProbe, PEConnLossRemove)
	}
	if c.MaxBadPEReports < 1 {
		bad("max_bad_pe_reports", "%d must be at least 1", c.MaxBadPEReports)
	}
	if c.MaxHResItemsCap < 1 || c.MaxHResItemsCap > 1000 {
		bad("max_hres_items_cap", "%d is outside [1, 1000]", c.MaxHResItemsCap)
	}
	if c.MaxHResItems < 1 || c.MaxHResItems > c.MaxHResItemsCap {
		bad("max_hres_items", "%d is outside [1, max_hres_items_cap=%d]", c.MaxHResItems, c.MaxHResItemsCap)
	}
	if c.ResolutionRate < 0 {
		bad("resolution_rate", "%v is negative (0 = no limit)", c.ResolutionRate)
	}
	if c.ResolutionBurst < 1 {
		bad("resolution_burst", "%d must be at least 1", c.ResolutionBurst)
	}
	if c.UnreachableRate < 0 {
		bad("unreachable_rate", "%v is negative (0 = no limit)", c.UnreachableRate)
	}
	if c.MessageRate < 0 {
		bad("message_rate", "%v is negative (0 = no limit)", c.MessageRate)
	}
	if c.UnreachableBurst < 1 {
		bad("unreachable_burst", "%d must be at least 1", c.UnreachableBurst)
	}
	for _, v := range []struct {
		key string
		n   int
	}{{"max_connections", c.MaxConnections}, {"max_connections_per_address", c.MaxConnectionsPerAddress}, {"max_pes_per_connection", c.MaxPEsPerConnection}} {
		if v.n < 0 {
			bad(v.key, "%d is negative (0 = no limit)", v.n)
		}
	}
	if c.MaxPoolHandle < 1 || c.MaxPoolHandle > 65000 {
		bad("max_pool_handle", "%d is outside [1, 65000]", c.MaxPoolHandle)
	}
	if c.ConnIdleTimeout.D() < 0 {
		bad("conn_idle_timeout", "%v is negative (0 = none)", c.ConnIdleTimeout.D())
	}
	if d := c.ConnParkAfter.D(); d < 0 || (d > 0 && d < 10*time.Millisecond) {
		bad("conn_park_after", "%v is out of range (0 = never park, else at least 10ms)", d)
	}
	if c.Profile != cluster.ProfileLAN && c.Profile != cluster.ProfileLocal {
		bad("profile", "%q is not lan or local", c.Profile)
	}
	for i, p := range c.ENRPPeers {
		if _, err := transport.ParseSpec(p); err != nil {
			bad(fmt.Sprintf("enrp_peers[%d]", i), "%v", err)
		}
	}
	for i, n := range c.ENRPPeerNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			bad(fmt.Sprintf("enrp_peer_networks[%d]", i), "%q is not a network such as 10.0.0.0/24: %v", n, err)
		}
	}
	if c.ENRPAnnounce != "" {
		if _, err := transport.ParseMulticastSpec(c.ENRPAnnounce); err != nil {
			bad("enrp_announce", "%v", err)
		}
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"peer_heartbeat", c.PeerHeartbeat}, {"max_time_last_heard", c.MaxTimeLastHeard},
		{"max_time_no_response", c.MaxTimeNoResponse}, {"takeover_expiry", c.TakeoverExpiry}} {
		if d.v.D() < 10*time.Millisecond {
			bad(d.name, "%v is below 10ms", d.v.D())
		}
	}
	if c.WatchHistory < 100 || c.WatchHistory > 10_000_000 {
		bad("watch_history", "%d is outside [100, 10000000] (events kept for clients that resume)", c.WatchHistory)
	}
	if c.MentorTimeout.D() < 0 || c.MentorTimeout.D() > 10*time.Minute {
		bad("mentor_timeout", "%v is outside [0, 10m] (0 = no start-up phase)", c.MentorTimeout.D())
	}
	if c.CommitDelay.D() < 0 || c.CommitDelay.D() > time.Second {
		bad("commit_delay", "%v is outside [0, 1s]", c.CommitDelay.D())
	}
	if c.WriteTimeout.D() < 10*time.Millisecond {
		bad("write_timeout", "%v is below 10ms", c.WriteTimeout.D())
	}
	if c.CSPServer != "" {
		if _, err := csp.HostPort(c.CSPServer); err != nil {
			bad("csp_server", "%v", err)
		}
	}
	if c.CSPInterval.D() < 250*time.Millisecond || c.CSPInterval.D() > time.Hour {
		bad("csp_interval", "%v is outside [250ms, 1h] (RSPLIB's lower bound)", c.CSPInterval.D())
	}
	if c.DistanceStep.D() < time.Millisecond || c.DistanceStep.D() > time.Minute {
		bad("distance_step", "%v is outside [1ms, 1m]", c.DistanceStep.D())
	}
	errs = append(errs, c.validateSecurity()...)
	if c.Voters < 1 || c.Voters > cluster.MaxVoters {
		bad("voters", "%d: want 1 to %d", c.Voters, cluster.MaxVoters)
	}
	mc := c.membershipConfig()
	mc.Voters = min(max(mc.Voters, 0), cluster.MaxVoters) // reported above
	if key, err := cluster.ParseEncryptKey(c.Encrypt); err != nil {
		bad("encrypt", "%v", err)
	} else {
		mc.EncryptKey = key
	}
	if err := mc.Validate(); err != nil {
		for _, e := range unjoin(err) {
			bad("gossip", "%v", e)
		}
	}
	if err := c.raftConfig().Validate(); err != nil {
		for _, e := range unjoin(err) {
			bad("raft", "%v", e)
		}
	}
	return errors.Join(errs...)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// announceGroup resolves the announce default: off on loopback.
func (c *Config) announceGroup() string {
	return defaultGroup(c.Announce, c.ASAP, "239.0.0.50:3863")
}

// enrpAnnounceGroup resolves the ENRP PRESENCE multicast default.
func (c *Config) enrpAnnounceGroup() string {
	return defaultGroup(c.ENRPAnnounce, c.ENRP, "239.0.0.51:9901")
}

// defaultGroup is set, else off when addr is loopback, else def.
func defaultGroup(set, addr, def string) string {
	if set != "" {
		return set
	}
	spec, err := transport.ParseSpec(addr)
	if err != nil {
		return "off"
	}
	for _, h := range spec.Hosts {
		a, err := netip.ParseAddr(h)
		if h == "localhost" || (err == nil && a.IsLoopback()) {
			continue
		}
		return def
	}
	if len(spec.Hosts) == 0 {
		return def // the wildcard address
	}
	return "off"
}

// BindFlags registers the agent's flags on fs, writing into c. Call
// LoadFile for -config before fs.Parse so flags override the file (see
// ParseAgentArgs).
func (c *Config) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the handlespace, raft state and identity")
	fs.Func("id", "registrar ID, 32 bits, decimal or 0x-hex (default: saved in the data dir, else random)", func(s string) error {
		v, err := strconv.ParseUint(s, 0, 32)
		if err != nil || v == 0 {
			return fmt.Errorf("want a non-zero 32-bit number")
		}
		c.ID = uint32(v)
		return nil
	})
	fs.StringVar(&c.ASAP, "asap", c.ASAP, "ASAP address for PEs and PUs, [tcp:|sctp:]host:port (no prefix: SCTP and TCP)")
	fs.StringVar(&c.ENRP, "enrp", c.ENRP, "ENRP address for other registrars, [tcp:|sctp:]host:port")
	fs.StringVar(&c.HTTP, "http", c.HTTP, "admin API and /metrics address, or off")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: trace, debug, info, warn, error")
	fs.BoolVar(&c.LogJSON, "log-json", c.LogJSON, "write logs as JSON")
	fs.StringVar(&c.LogFile, "log-file", c.LogFile, "write logs to this file instead of standard error, rotated by size")
	fs.IntVar(&c.LogFileMaxSize, "log-file-max-size", c.LogFileMaxSize, "rotate the log file once it is this many megabytes")
	fs.IntVar(&c.LogFileMaxBackups, "log-file-max-backups", c.LogFileMaxBackups, "rotated log files kept (0: all)")
	fs.IntVar(&c.MetricsPoolTop, "metrics-pool-top", c.MetricsPoolTop, "export the PE count of this many largest pools (0: none)")
	fs.StringVar(&c.Announce, "announce", c.Announce, "ASAP SERVER_ANNOUNCE multicast group:port, or off (default: off on loopback, else 239.0.0.50:3863)")
	fs.TextVar(&c.AnnounceInterval, "announce-interval", c.AnnounceInterval, "period of SERVER_ANNOUNCE")
	fs.IntVar(&c.AnnounceTTL, "announce-ttl", c.AnnounceTTL, "multicast TTL of announces")
	fs.StringVar(&c.AnnounceInterface, "announce-interface", c.AnnounceInterface, "interface for announces (default: routing decides)")
	fs.TextVar(&c.KeepAliveInterval, "keepalive-interval", c.KeepAliveInterval, "period of ENDPOINT_KEEP_ALIVE to each PE this registrar is home for")
	fs.TextVar(&c.KeepAliveTimeout, "keepalive-timeout", c.KeepAliveTimeout, "wait for ENDPOINT_KEEP_ALIVE_ACK before removing the PE")
	fs.StringVar(&c.PEConnLoss, "pe-conn-loss", c.PEConnLoss, "when a PE's registration association is lost: probe (keep-alive at once, removed after -keepalive-timeout without an ACK) or remove (at once, as RSPLIB)")
	fs.IntVar(&c.MaxBadPEReports, "max-bad-pe-reports", c.MaxBadPEReports, "ENDPOINT_UNREACHABLE reports that remove a PE")
	fs.IntVar(&c.MaxHResItems, "max-hres-items", c.MaxHResItems, "PEs per handle resolution when the PU does not say")
	fs.BoolVar(&c.AllowForeignAddresses, "allow-foreign-addresses", c.AllowForeignAddresses, "keep PE addresses that are not the PE connection's own")
	fs.Float64Var(&c.ResolutionRate, "resolution-rate", c.ResolutionRate, "handle resolutions per second per ASAP connection, beyond it dropped (0 = no limit)")
	fs.Float64Var(&c.UnreachableRate, "unreachable-rate", c.UnreachableRate, "ENDPOINT_UNREACHABLE reports per second per ASAP connection (0 = no limit)")
	fs.Float64Var(&c.MessageRate, "message-rate", c.MessageRate, "ASAP messages per second per connection, beyond it dropped (0 = no limit)")
	fs.IntVar(&c.MaxConnections, "max-connections", c.MaxConnections, "cap on accepted ASAP and ENRP connections (0: the file descriptor limit less 256)")
	fs.IntVar(&c.MaxConnectionsPerAddress, "max-connections-per-address", c.MaxConnectionsPerAddress, "cap on ASAP and ENRP connections per source address (0: none)")
	fs.IntVar(&c.MaxPEsPerConnection, "max-pes-per-connection", c.MaxPEsPerConnection, "cap on PEs registered through one ASAP connection (0: none)")
	fs.IntVar(&c.MaxPoolHandle, "max-pool-handle", c.MaxPoolHandle, "longest pool handle accepted, in bytes")
	fs.StringVar(&c.Profile, "profile", c.Profile, "timing profile: lan or local (short timers for one host)")
	fs.StringVar(&c.Raft, "raft", c.Raft, "raft bind address")
	fs.StringVar(&c.RaftAdvertise, "raft-advertise", c.RaftAdvertise, "raft address other registrars use (default: the bind address)")
	fs.TextVar(&c.SnapshotInterval, "snapshot-interval", c.SnapshotInterval, "how often raft checks whether to snapshot")
	fs.Uint64Var(&c.SnapshotThreshold, "snapshot-threshold", c.SnapshotThreshold, "new raft entries that trigger a snapshot")
	fs.IntVar(&c.SnapshotRetain, "snapshot-retain", c.SnapshotRetain, "snapshots kept")
	fs.Uint64Var(&c.TrailingLogs, "trailing-logs", c.TrailingLogs, "raft entries kept after a snapshot")
	fs.TextVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "how long a registration waits for the raft commit before it is refused")
	fs.StringVar(&c.Gossip, "gossip", c.Gossip, "gossip (memberlist) bind address")
	fs.StringVar(&c.GossipAdvertise, "gossip-advertise", c.GossipAdvertise, "gossip address other registrars use (default: the bind address)")
	fs.StringVar(&c.NodeName, "node", c.NodeName, "gossip node name (default registrar-<id>)")
	fs.Func("join", "seed gossip addresses to join, host:port[,host:port] (repeatable)", listFlag(&c.Join))
	fs.TextVar(&c.RetryJoinInterval, "retry-join-interval", c.RetryJoinInterval, "first wait between join attempts (doubles up to 30s)")
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", c.BootstrapExpect, "form a new cluster once this many registrars see each other")
	fs.IntVar(&c.Voters, "voters", c.Voters, "raft voters the cluster keeps (1 to 7); further registrars are non-voters")
	fs.StringVar(&c.Encrypt, "encrypt", c.Encrypt, "gossip encryption key, base64 of 16, 24 or 32 bytes")
	fs.BoolVar(&c.LeaveOnTerminate, "leave-on-terminate", c.LeaveOnTerminate, "leave the cluster gracefully on SIGINT/SIGTERM")
	fs.Func("enrp-peer", "ENRP address of a registrar outside the cluster to peer with (repeatable, or comma list)", listFlag(&c.ENRPPeers))
	fs.Func("enrp-peer-network", "network (CIDR) whose registrars are accepted as ENRP peers and learnt by multicast (repeatable, or comma list)", listFlag(&c.ENRPPeerNetworks))
	fs.StringVar(&c.ENRPAnnounce, "enrp-announce", c.ENRPAnnounce, "ENRP PRESENCE multicast group:port, or off (default: off on loopback, else 239.0.0.51:9901)")
	fs.BoolVar(&c.ENRPTakeoverSuggestion, "enrp-takeover-suggestion", c.ENRPTakeoverSuggestion, "claim a PE (H=1 keep-alive) whose home suggests it with the T bit of a HANDLE_UPDATE")
	fs.TextVar(&c.PeerHeartbeat, "peer-heartbeat", c.PeerHeartbeat, "PRESENCE period to ENRP peers")
	fs.TextVar(&c.MaxTimeLastHeard, "max-time-last-heard", c.MaxTimeLastHeard, "silence before an ENRP peer is probed")
	fs.TextVar(&c.MaxTimeNoResponse, "max-time-no-response", c.MaxTimeNoResponse, "unanswered probe time before an ENRP peer counts as dead")
	fs.TextVar(&c.MentorTimeout, "mentor-timeout", c.MentorTimeout, "ENRP start-up: how long to wait for a mentor peer's handle table before serving ASAP (0: no start-up phase)")
	fs.TextVar(&c.TakeoverExpiry, "takeover-expiry", c.TakeoverExpiry, "time to collect INIT_TAKEOVER_ACKs")
	fs.TextVar(&c.CommitDelay, "commit-delay", c.CommitDelay, "group the handlespace file's commits over this long (0: commit each batch)")
	fs.BoolVar(&c.UI, "ui", c.UI, "serve the web dashboard at /ui/ on the admin API (-ui=false: off)")
	fs.IntVar(&c.WatchHistory, "watch-history", c.WatchHistory, "change stream events kept for clients that resume (GET /v1/watch?index=N)")
	fs.BoolVar(&c.EnableDebug, "enable-debug", c.EnableDebug, "serve pprof profiles on the admin API under /debug/pprof/")
	fs.StringVar(&c.CSPServer, "csp-server", c.CSPServer, "report the registrar's status to this RSPLIB CSP monitor (cspmonitor), host[:port] (port 2960)")
	fs.TextVar(&c.CSPInterval, "csp-interval", c.CSPInterval, "period of CSP status reports")
	fs.TextVar(&c.DistanceStep, "distance-step", c.DistanceStep, "round the measured distance to a PE of a DPF policy to a multiple of this")
	c.bindSecurityFlags(fs)
}

// listFlag appends a comma-separated flag value (the flag may repeat).
func listFlag(dst *[]string) func(string) error {
	return func(s string) error {
		for _, a := range strings.Split(s, ",") {
			if a = strings.TrimSpace(a); a != "" {
				*dst = append(*dst, a)
			}
		}
		return nil
	}
}

// flagKeys are the flags whose config key is not the flag name with
// underscores.
var flagKeys = map[string]string{"node": "node_name", "enrp-peer": "enrp_peers", "enrp-peer-network": "enrp_peer_networks", "join": "join"}

// FlagKey is the config key a flag of BindFlags sets ("" for -config and
// -validate, which have none).
func FlagKey(flagName string) string {
	switch flagName {
	case "config", "validate":
		return ""
	}
	if k, ok := flagKeys[flagName]; ok {
		return k
	}
	return strings.ReplaceAll(flagName, "-", "_")
}

// AgentFlagSet is the command line of `registrar agent`: -config FILE,
// -validate, and every configuration flag, writing into cfg.
func AgentFlagSet(cfg *Config, configFile *string, validate *bool) *flag.FlagSet {
	fs := flag.NewFlagSet("registrar agent", flag.ContinueOnError)
	fs.StringVar(configFile, "config", "", "JSON config file (flags override it); see docs/configuration.md")
	fs.BoolVar(validate, "validate", false, "check the configuration (file and flags) and exit: 0 when valid, 2 with every problem")
	cfg.BindFlags(fs)
	return fs
}

// ParseAgentArgs builds the agent's configuration from its command line:
// defaults, then the -config file, then the flags. The returned error
// lists every problem (each a *ConfigError): those of the file at their
// line and column, then those of the values, located in the file when the
// file set them.
func ParseAgentArgs(args []string) (Config, error) {
	// First pass: the flags alone, for -config (and flag syntax errors).
	var file string
	var validate bool
	scratch := DefaultConfig()
	if err := silent(AgentFlagSet(&scratch, &file, &validate)).Parse(args); err != nil {
		return scratch, err
	}
	cfg := DefaultConfig()
	var errs []error
	var keys map[string]filePos
	if file != "" {
		var err error
		keys, err = cfg.loadFile(file)
		errs = append(errs, unjoin(err)...)
	}
	fs := silent(AgentFlagSet(&cfg, &file, &validate))
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	fromFlag := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { fromFlag[FlagKey(f.Name)] = true })
	if err := cfg.Validate(); err != nil {
		for _, e := range unjoin(err) {
			var ce *ConfigError
			if errors.As(e, &ce) {
				base, _, _ := strings.Cut(ce.Key, "[")
				// gossip and raft group the problems of several keys.
				if p, ok := keys[base]; ok && !fromFlag[base] && base != "gossip" && base != "raft" {
					ce.File, ce.Line, ce.Col = file, p.line, p.col
				}
			}
			errs = append(errs, e)
		}
	}
	return cfg, errors.Join(errs...)
}

// silent keeps a flag set from printing (its caller reports errors).
func silent(fs *flag.FlagSet) *flag.FlagSet {
	fs.SetOutput(io.Discard)
	return fs
}
