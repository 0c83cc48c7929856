// Package registrar is the registrar daemon (ENRP server): `registrar
// agent` is New(cfg) and Run(ctx).
//
// # What it runs
//
// A Registrar opens the handlespace (package store) and a raft node
// (package cluster) on its data directory, joins the cluster by gossip,
// and serves:
//
//   - ASAP (RFC 5352) to PEs and PUs on its ASAP address: registrations,
//     committed through raft and answered after the commit; resolutions
//     answered from the local handlespace; deregistrations,
//     unreachability reports, keep-alive acknowledgements;
//   - ENRP (RFC 5353) on its ENRP address to registrars outside the
//     cluster and to tools such as hsdump, with peering (handle table
//     sync, updates, takeovers) when configured;
//   - the admin API and Prometheus /metrics on its HTTP address.
//
// It supervises the PEs it is home for with ENDPOINT_KEEP_ALIVE (soft
// state, not replicated: a restart or a takeover starts it afresh) and
// announces itself by multicast when configured.
//
// # Lifecycle
//
// Run first checks that every listener can bind (nothing is written into
// the data dir before), then opens everything in order, logs ReadyLine,
// and on cancellation shuts down in the reverse order: listeners and
// connections, supervision and announces, gossip (a graceful leave only
// when asked), raft, the handlespace. Every goroutine is started through goFunc and joined.
//
// # Configuration
//
// Config has DefaultConfig, DefaultTestConfig (loopback, free ports, short
// timers) and Validate, which lists every problem. ParseAgentArgs reads the
// command line and the JSON config file (docs/configuration.md); every
// problem is a *ConfigError in the file's terms, located at its
// file:line:column when the file has it. Reload applies a new
// configuration to a running registrar: the keys of reloadable change at
// once, the others are reported as needing a restart (reload.go).
//
// # Tests
//
// StartForTest runs a registrar in-process; StartAgent and StartProcess run
// the built binaries for end-to-end tests (E2E_BIN).
package registrar
