// Package sharedtest holds the test helpers every package of the module
// shares, so that none keeps a copy of its own: a logger that writes to
// t.Log and goes quiet when the test ends (Logger), a concurrency-safe
// buffer for log and command output that tests wait on (Buffer), and a
// check that a test leaves no goroutine of the libraries running
// (CheckLeaks).
//
// It imports nothing of the module, so the tests of any package (asap and
// enrp included) can use it without an import cycle; it lives under
// asap/, the bottom layer, because the module's top-level folders are
// fixed. It is for tests only.
package sharedtest
