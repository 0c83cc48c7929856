// Package pe is the pool element (PE) side of ASAP (RFC 5352): a service
// registers under a pool handle at a registrar, so that pool users (package
// pu) reach "a PE of pool X", and fail over to another PE of the pool when
// this one dies.
//
// # Registration
//
// An Element registers one PE:
//
//	srv, _ := pe.Listen(ctx, "tcp:10.0.0.5:0", pe.DefaultServerConfig())
//	cfg := pe.DefaultConfig()
//	cfg.PoolHandle = "echo"
//	cfg.User = srv.Transport()
//	cfg.Registrars = []string{"tcp:10.0.0.1:3863", "tcp:10.0.0.2:3863"}
//	el, _ := pe.New(cfg)
//	err := el.Register(ctx) // answered after the registrar's commit
//	defer el.Close()        // deregisters
//
// Register returns once a registrar accepted the registration, or with a
// *RegistrationError that says why it was refused and what to change, or
// with an error matching ErrNoRegistrar that names every registrar tried.
// From then on the element renews the registration every ReregInterval
// (default 30 s; the registration life is 3 × that, as RSPLIB's PEs do)
// and at once when SetLoad or SetPolicy change the policy values.
//
// # Registrars and the server hunt
//
// Registrars come from Config.Registrars (in order) and from
// ASAP_SERVER_ANNOUNCE multicast (Config.Announce; default 239.0.0.50:3863
// when no address is given). A registrar learnt from announces stays a
// candidate for AnnounceTimeout (T7, 5 s) after its last announce. Every
// request (registration, deregistration) waits RequestTimeout for the
// answer and is sent RequestRetries more times (RSPLIB: 3 s, 1 retry);
// then the element hunts: it tries the next registrar. A renewal that no
// registrar answers is retried with a backoff from 250 ms up to
// ReregInterval, and logged.
//
// # Keep-alives and a new home registrar
//
// The element answers ASAP_ENDPOINT_KEEP_ALIVE with
// ASAP_ENDPOINT_KEEP_ALIVE_ACK. RSPLIB's registrars name the PE in the
// keep-alive; the RFC form names only the pool, and then this PE's
// registration in that pool is acked.
//
// The element listens on an ASAP endpoint of its own (Config.ASAP, default
// every local address and a free port, SCTP and TCP where the kernel has
// SCTP) and announces it in the registration as the Pool Element's ASAP
// transport (transport use data only; wildcard addresses replaced by the
// address the registrar sees). A registrar that takes the PE over after
// its home registrar died connects there and sends a keep-alive with the
// H bit ("I want to be your home registrar"). The element acks, records
// the new home's ID, and makes that connection its registrar connection:
// the following renewals go to the new home over the connection the new
// home opened. If that connection breaks later, the element hunts as
// usual (among the registrars learnt from announces, the home first).
//
// # Serving pool users
//
// A Server is the service endpoint pool users connect to. Its connections
// carry application data and ASAP control messages together, "data plus
// control" (RFC 5352 section 3.7, transport use 1): over SCTP the PPID
// tells them apart (ASAP is 11), over TCP the transport's mux framing does
// (see package transport). Server.Transport is the matching user transport
// for Config.User.
//
// Each Session can send application data, a cookie (ASAP_COOKIE: state the
// pool user keeps and hands to the next PE when it fails over) and a
// business card (ASAP_BUSINESS_CARD: the PEs the pool user should fail over
// to). Recv returns application data, and on a session that failed over to
// this PE, first the echoed cookie (KindCookieEcho), from which the
// service restores the session's state. Keep cookies a multiple of 4 bytes
// long: RSPLIB's parser fails on other lengths.
//
// # Concurrency and lifetime
//
// Element, Server and Session are safe for concurrent use (a Session's
// Recv is for one goroutine). Every goroutine belongs to an Element or a
// Server and stops in its Close. A nil Logger keeps the package silent.
//
// The guide with a complete example is docs/pe-pu-library.md.
package pe
