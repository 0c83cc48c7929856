//go:build !unix

package transport

// rawWrite writes nothing where sockets are not plain descriptors
// (Windows): every message then goes through the writer goroutine.
func rawWrite(fd uintptr, b []byte) (int, error) { return 0, nil }
