// Package registrar is the registrar daemon (ENRP server): `registrar
// agent` is New(cfg) and Run(ctx).
//
// # What it runs
//
// A Registrar opens the replicated handlespace (cluster.Handlespace: the
// handlespace file, the raft node and gossip, all on its data directory)
// and serves:
//
//   - ASAP (RFC 5352) to PEs and PUs on its ASAP address: registrations,
//     written to the handlespace (committed through raft) and answered
//     after the commit; resolutions answered from the local copy;
//     deregistrations, unreachability reports, keep-alive
//     acknowledgements;
//   - ENRP (RFC 5353) on its ENRP address to registrars outside the
//     cluster and to tools such as hsdump, with peering (handle table
//     sync, updates, takeovers) when configured;
//   - the admin API and Prometheus /metrics on its HTTP address.
//
// It supervises the PEs it is home for with ENDPOINT_KEEP_ALIVE (soft
// state, not replicated: a restart or a takeover starts it afresh) and
// announces itself by multicast when configured.
//
// # Below the daemon
//
// The daemon imports the codecs (asap, enrp), transport, snapshot (the
// archive format) and cluster, and of cluster only the Handlespace and
// its value types: it knows neither raft, bbolt nor the store. What
// happens after a commit is visible where it is used: PE supervision
// (liveness.go) and ENRP peering (peers*.go) subscribe to the
// handlespace's committed changes. ENRP peering reaches the handlespace
// only through the small peerHandlespace interface; it is split by
// concern: the peer table and loop (peers.go), associations and
// heartbeats (peers_conn.go), handle tables and updates (peers_sync.go),
// takeovers (peers_takeover.go), the start-up phase with a mentor
// (peers_mentor.go).
//
// # Lifecycle
//
// Run opens everything in steps (open): the data dir (only after every
// listener was found able to bind), the listeners' sockets (bound but not
// yet served, so that gossip's first word about this registrar carries
// their addresses), the handlespace, PE supervision, serving the ENRP
// listener and the admin API, ENRP peering, the ENRP start-up phase (the
// mentor's handle table, bounded by MentorTimeout), serving ASAP, the
// announces; it logs ReadyLine, and on
// cancellation shuts down in the reverse order: listeners and
// connections, supervision and announces, gossip (a graceful leave only
// when asked), raft, the handlespace file. Every goroutine is started
// through goFunc and joined.
//
// # Configuration
//
// Config has DefaultConfig and Validate, which lists every problem.
// ParseAgentArgs reads the command line and the JSON config file
// (docs/configuration.md); every problem is a *ConfigError in the file's
// terms, located at its file:line:column when the file has it. Reload
// applies a new configuration to a running registrar: the keys of
// reloadable change at once, the others are reported as needing a
// restart (reload.go).
//
// # Tests
//
// Package registrartest runs registrars for tests, in-process (Start,
// StartCluster, Crash) or as the built binaries (StartAgent, Process);
// the handlers' unit tests use an in-memory handlespace
// (cluster/clustertest).
package registrar
