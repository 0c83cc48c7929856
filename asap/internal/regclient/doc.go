// Package regclient is the registrar side of the PE and PU libraries
// (packages asap/pe and asap/pu): it finds registrars, keeps one ASAP
// connection to the current one, hunts for another when that one is lost,
// and matches requests with their responses under a timeout with retries.
//
// # Finding registrars
//
// Candidates are the static list (Config.Registrars, in order) followed by
// the registrars heard in ASAP_SERVER_ANNOUNCE multicast (RFC 5352 section
// 3.6). An announce names the registrar's ASAP endpoints as transport
// parameters (our registrar does); an announce without any (RSPLIB's) stands
// for the UDP source address and source port, as RSPLIB's receivers assume.
// An entry learnt from announces expires AnnounceTimeout (T7-ENRPoutdate,
// 5 s) after the last announce.
//
// # Server hunt
//
// Request uses the current connection, or dials the candidates in turn,
// starting after the one that failed last. On the chosen connection a
// request is sent, answered within RequestTimeout, or sent again up to
// RequestRetries times (RSPLIB: 3 s and 1 retry); then the connection is
// dropped and the next candidate is tried. A request gives up once every
// candidate failed, with an error naming each one and why. Callers that
// must keep going (a PE's re-registration) retry with a backoff of their
// own.
//
// # Connections the registrar opened
//
// A PE listens on an ASAP endpoint of its own, where a registrar that took
// it over reaches it (RFC 5352 section 3.9). Serve runs such an accepted
// connection like a dialed one: its messages go to the Handler, and Adopt
// makes it the current connection, so later requests go to that registrar.
//
// # Concurrency
//
// A Client is safe for concurrent use. Each connection has one reader
// goroutine, which calls the Handler: the Handler must not block for long.
// Every goroutine belongs to the Client and stops in Close.
package regclient
