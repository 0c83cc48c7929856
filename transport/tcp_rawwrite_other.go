//go:build !unix

package transport

import "errors"

// rawWrite writes nothing where sockets are not plain descriptors
// (Windows): every message then goes through the writer goroutine.
func rawWrite(fd uintptr, b []byte) (int, error) { return 0, nil }

// rawReads: where sockets are not plain descriptors, connections read
// through net.Conn and keep their receive buffer.
const rawReads = false

// rawReadFD is never called where rawReads is false.
func rawReadFD(fd uintptr, b []byte) (int, error) { return 0, errors.ErrUnsupported }
