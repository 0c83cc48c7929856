// Package pu is the pool user (PU) side of ASAP (RFC 5352): it resolves a
// pool handle at a registrar to the pool's PEs, reports PEs it cannot
// reach, and talks to "a PE of pool X" through a Session that fails over
// to another PE, with the PE's state cookie, when the PE dies.
//
// # Resolution
//
//	cfg := pu.DefaultConfig()
//	cfg.Registrars = []string{"tcp:10.0.0.1:3863"}
//	u, _ := pu.New(cfg)
//	defer u.Close()
//	pes, err := u.Resolve(ctx, "echo")
//
// The registrar selects the PEs by the pool's member selection policy;
// Resolve returns them in that order. The answer is cached for CacheTime
// (the stale-cache time, default 5 s): a PU that opens many sessions does
// not ask the registrar each time, and within the cache time successive
// resolutions rotate through the cached PEs, so sessions still spread over
// the pool. A PE reported unreachable leaves the cache at once. Config.Items
// asks for a number of PEs with the Handle Resolution Option (RSPLIB's PUs
// with a cache leave it out; by default so do we, and the registrar
// answers with its default of 3). An unknown pool gives an error matching
// ErrUnknownPool.
//
// Registrars are found as for package pe: Config.Registrars in order, and
// ASAP_SERVER_ANNOUNCE multicast; a request waits RequestTimeout and is
// sent RequestRetries more times (RSPLIB: 3 s, 1 retry) before the next
// registrar is tried. An error matching ErrNoRegistrar names every
// registrar tried.
//
// ReportUnreachable sends ASAP_ENDPOINT_UNREACHABLE; a registrar removes a
// PE after a few reports (MAX-BAD-PE-REPORT, 3).
//
// # Sessions and failover
//
//	s, err := u.Connect(ctx, "echo", pu.DefaultSessionConfig())
//	err = s.Send(ctx, []byte("hello"))
//	ppid, reply, err := s.Recv(ctx)
//
// A session connects to the first PE of the resolution (the registrar has
// applied the policy already) over the PE's user transport: TCP with the
// transport's mux framing when the PE declares data plus control, SCTP
// with PPIDs (dialed as an auto address, so it falls back to TCP on a
// kernel without SCTP). ASAP messages from the PE arrive on the same
// connection: the session keeps the last ASAP_COOKIE and the PEs of the
// last ASAP_BUSINESS_CARD.
//
// When the PE fails — its connection breaks, a send fails, or the
// application calls Failover, e.g. after a reply did not come in time —
// the session:
//
//  1. reports the PE unreachable to the registrar (SessionConfig.
//     ReportUnreachable) and drops it from the cache;
//  2. connects to another PE: the business card's PEs first, then the
//     cached resolution, then a fresh one, skipping PEs that failed in this
//     session (and, as a last resort, trying those again);
//  3. sends the last cookie in ASAP_COOKIE_ECHO before anything else;
//  4. calls SessionConfig.OnFailover.
//
// Messages the old PE had not answered are lost with it; the application
// resends what it needs, and the cookie tells the new PE where the session
// stood. A session that finds no PE is broken: Send and Recv return an
// error matching ErrNoPE.
//
// # Concurrency and lifetime
//
// User and Session are safe for concurrent use (a Session's Recv is for
// one goroutine). Every goroutine belongs to the User or a Session and
// stops in Close; User.Close closes its sessions. A nil Logger keeps the
// package silent.
//
// The guide with a complete example is docs/pe-pu-library.md.
package pu
