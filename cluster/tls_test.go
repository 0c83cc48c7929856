package cluster

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/store"
	"github.com/rserpool-go/registrar/transport/tlsutil"
	"github.com/rserpool-go/registrar/transport/tlsutil/tlstest"
)

// openTLSNode starts a one-node cluster whose raft port is mutual TLS.
func openTLSNode(t *testing.T, files tlsutil.Files) (*Node, *store.Store, *sharedtest.Buffer) {
	t.Helper()
	st := store.OpenMemory(nil)
	cfg := DefaultRaftConfig(ProfileLocal)
	cfg.Bind = "127.0.0.1:0"
	cfg.TLS = tlstest.Store(t, files)
	log, logs := sharedtest.BufferLogger(t, "raft")
	n, err := OpenNode(NodeConfig{ID: 0x1234, Dir: filepath.Join(t.TempDir(), "raft"), Raft: cfg, Bootstrap: true, NoSync: true,
		Logger: log}, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown() })
	deadline := time.Now().Add(10 * time.Second)
	for !n.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("the TLS node did not lead within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return n, st, logs
}

// forwardOver sends one forwarded write (the 'F' kind byte, a length and
// the command) on c and reads the answer; an error when the registrar
// closed the connection instead.
func forwardOver(c net.Conn, kind bool, data []byte) (forwardReply, error) {
	var rep forwardReply
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := []byte{}
	if kind {
		msg = append(msg, connForward)
	}
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(data)))
	if _, err := c.Write(append(msg, data...)); err != nil {
		return rep, err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return rep, err
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(c, body); err != nil {
		return rep, err
	}
	return rep, json.Unmarshal(body, &rep)
}

// Ensure that the raft port with TLS refuses forwarded writes from a
// plain TCP connection, a client certificate of the cluster's CA, an
// expired registrar certificate and one of a foreign CA, with the
// handlespace unchanged, and serves one from a registrar of the CA.
func TestRaftPort_TLS_RefusesStrangers(t *testing.T) {
	ca := tlstest.New(t, "cluster")
	foreign := tlstest.New(t, "foreign")
	n, st, logs := openTLSNode(t, ca.Registrar("leader"))
	addr := n.mux.Addr().String()
	cmd := NewUpdate(time.Now(), enrp.AddPE, 0x1234, "pool", pe(0xbad, 0x1234))
	data, err := cmd.Marshal()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("plain TCP", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if rep, err := forwardOver(c, true, data); err == nil {
			t.Fatalf("a plain TCP forwarded write was answered: %+v", rep)
		}
	})
	for _, tc := range []struct {
		name  string
		files tlsutil.Files
	}{
		{"client certificate of the CA", ca.Client("cli")},
		{"expired registrar certificate", ca.Expired("old")},
		{"registrar certificate of a foreign CA", foreign.Registrar("intruder")},
		{"no certificate", tlsutil.Files{CA: ca.File}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.files
			f.CA = ca.File
			cfg := tlstest.Store(t, f).PeerClientConfig()
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
			if err != nil {
				return // refused in the handshake (TLS 1.2)
			}
			defer c.Close()
			if rep, err := forwardOver(c, true, data); err == nil {
				t.Fatalf("a forwarded write with %s was answered: %+v", tc.name, rep)
			}
		})
	}
	if _, ok := st.Lookup("pool", 0xbad); ok {
		t.Fatal("a refused forwarded write added its PE")
	}
	if !logs.Contains("raft port: connection refused: TLS handshake failed", 5*time.Second) {
		t.Errorf("the refusals were not logged; log:\n%s", logs)
	}

	t.Run("registrar of the CA", func(t *testing.T) {
		c, err := dialKind(addr, 5*time.Second, connForward, tlstest.Store(t, ca.Registrar("follower")))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rep, err := forwardOver(c, false, data)
		if err != nil || rep.Err != "" {
			t.Fatalf("the forwarded write of a registrar: got %+v, %v, want applied", rep, err)
		}
		n.waitApplied(context.Background(), rep.Index, 5*time.Second)
		if _, ok := st.Lookup("pool", 0xbad); !ok {
			t.Fatal("the forwarded write of a registrar of the CA was not applied")
		}
	})
}
