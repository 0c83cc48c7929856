//go:build unix

package transport

import "syscall"

// rawWrite is one non-blocking write(2) on a connection's descriptor.
func rawWrite(fd uintptr, b []byte) (int, error) { return syscall.Write(int(fd), b) }
