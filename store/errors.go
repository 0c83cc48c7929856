package store

import (
	"errors"
	"strconv"

	"github.com/rserpool-go/registrar/asap"
)

// Errors of the handlespace Store. Errors are wrapped with detail (the pool,
// the PE, the file), so compare with errors.Is; CauseOf gives the ASAP
// Operation Error cause for the ones a registrar reports to a PE or PU.
var (
	// ErrPoolNotFound is returned by Resolve for a pool handle that has no
	// PEs (cause Unknown Pool Handle).
	ErrPoolNotFound = errors.New("pool not found")

	// ErrPENotFound is returned in Result.Err by an OpDeregister of a PE
	// that is not registered.
	ErrPENotFound = errors.New("pool element not found")

	// ErrPolicyMismatch is returned by Check (and in Result.Err) for a PE
	// whose policy type differs from its pool's (cause Inconsistent
	// Pooling Policy).
	ErrPolicyMismatch = errors.New("inconsistent pooling policy")

	// ErrTransportMismatch is returned by Check for a PE whose user
	// transport kind (SCTP, TCP, ...) differs from its pool's (cause
	// Inconsistent Transport Type).
	ErrTransportMismatch = errors.New("inconsistent transport type")

	// ErrDataControlMismatch is returned by Check for a PE whose transport
	// use (data only, data plus control) differs from its pool's (cause
	// Inconsistent Data/Control Configuration).
	ErrDataControlMismatch = errors.New("inconsistent data/control configuration")

	// ErrInvalidPE is returned by Check for a PE the store cannot hold: PE
	// identifier 0, an empty or over-long pool handle, a policy type the
	// store does not support, or a PE that cannot be encoded (cause Invalid
	// Values, or RSPLIB's Unsupported Policy for the policy type).
	ErrInvalidPE = errors.New("invalid pool element")

	// ErrInvalidOp is returned in Result.Err for an Op that makes no sense
	// (an unknown kind, OpReassign without targets).
	ErrInvalidOp = errors.New("invalid operation")

	// ErrClosed is returned by every method of a closed Store.
	ErrClosed = errors.New("handlespace store is closed")

	// ErrCorrupt is returned by Open (and ForEachTx) when the file is not a
	// handlespace database or holds a value that does not decode. The
	// file is left unchanged and the error names it.
	ErrCorrupt = errors.New("corrupt handlespace database")

	// ErrLocked is returned by Open when another process (or another open
	// Store) holds the file for longer than Options.Timeout.
	ErrLocked = errors.New("handlespace database is locked by another process")

	// ErrVersion is returned by Open for a file written in a newer format
	// version than this build reads.
	ErrVersion = errors.New("unsupported handlespace format version")

	// ErrNoFile is returned by View and ForEachTx of a store opened with
	// OpenMemory.
	ErrNoFile = errors.New("in-memory handlespace store has no file")
)

// PEError is the error of a PE that Check refuses. It wraps one of the
// sentinels above and carries what a registrar needs to answer with an ASAP
// Operation Error.
type PEError struct {
	Handle asap.PoolHandle
	ID     uint32
	Err    error  // ErrPolicyMismatch, ErrTransportMismatch, ErrDataControlMismatch or ErrInvalidPE
	Detail string // human-readable detail, e.g. "pool uses rr, PE has lu"
	Cause  asap.CauseCode
	// Info is the cause information: the offending parameter (policy or
	// transport) for the causes that carry one, else nil.
	Info []byte
}

// Error names the pool, the PE and the reason.
func (e *PEError) Error() string {
	h, _ := e.Handle.MarshalText()
	s := "store: pool " + strconv.Quote(string(h)) + " PE 0x" + strconv.FormatUint(uint64(e.ID), 16) + ": " + e.Err.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap gives the sentinel.
func (e *PEError) Unwrap() error { return e.Err }

// OperationError builds the Operation Error parameter to send back.
func (e *PEError) OperationError() *asap.OperationError {
	return asap.NewOperationError(e.Cause, e.Info)
}

// CauseOf returns the ASAP Operation Error cause code that a registrar
// should answer with for err: the Cause of a *PEError in its chain (policy,
// transport, data/control mismatch, invalid values, unsupported policy),
// Unknown Pool Handle for ErrPoolNotFound. It returns false for other
// errors (I/O failures, ErrClosed, ...).
func CauseOf(err error) (asap.CauseCode, bool) {
	var pe *PEError
	if errors.As(err, &pe) {
		return pe.Cause, true
	}
	if errors.Is(err, ErrPoolNotFound) {
		return asap.CauseUnknownPoolHandle, true
	}
	return 0, false
}

// poolError wraps a sentinel with the pool handle.
type poolError struct {
	handle asap.PoolHandle
	id     uint32
	hasID  bool
	err    error
}

func (e *poolError) Error() string {
	h, _ := e.handle.MarshalText()
	s := "store: pool " + strconv.Quote(string(h))
	if e.hasID {
		s += " PE 0x" + strconv.FormatUint(uint64(e.id), 16)
	}
	return s + ": " + e.err.Error()
}

func (e *poolError) Unwrap() error { return e.err }
