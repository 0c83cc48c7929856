//go:build unix

package transport

import "syscall"

// rawWrite is one non-blocking write(2) on a connection's descriptor.
func rawWrite(fd uintptr, b []byte) (int, error) { return syscall.Write(int(fd), b) }

// rawReads: plain TCP connections read with read(2) on their descriptor,
// taking a pooled receive buffer only when the socket has data.
const rawReads = true

// rawReadFD is one non-blocking read(2) on a connection's descriptor.
func rawReadFD(fd uintptr, b []byte) (int, error) { return syscall.Read(int(fd), b) }
