package snapshot

import "errors"

// Errors. Every format error of a reader wraps exactly one of them, with
// the byte offset and what was wrong (I/O errors of the underlying reader
// are passed on wrapped, IsFormatError tells them apart); the file helpers
// add the file name.
var (
	// ErrNotSnapshot: the data does not start like a snapshot (another
	// kind of file, or one too short to tell).
	ErrNotSnapshot = errors.New("not a registrar snapshot")
	// ErrVersion: the header names a format version this build cannot
	// read (written by a newer registrar, or the version bytes are damaged).
	ErrVersion = errors.New("unsupported snapshot format version")
	// ErrCorrupt: the content is malformed or does not match its
	// checksum or counts.
	ErrCorrupt = errors.New("snapshot is corrupt")
	// ErrTruncated: the data ends before the trailer is complete.
	ErrTruncated = errors.New("snapshot is truncated")
)
