package main

import (
	"net"
	"os"
	"strings"
)

// sdNotify sends a state to systemd's notification socket (sd_notify(3)):
// "READY=1" once the registrar serves, "RELOADING=1" and "READY=1" around
// a reload, "STOPPING=1" at shutdown. Without NOTIFY_SOCKET (not started
// by systemd with Type=notify) it does nothing. A failure is returned for
// the caller to log; it never stops the registrar.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if strings.HasPrefix(path, "@") { // abstract socket
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}
