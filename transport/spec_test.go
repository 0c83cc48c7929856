package transport_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/transport"
)

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		in    string
		proto transport.Proto
		hosts []string
		port  uint16
		str   string // String(), when it differs from in
	}{
		{"127.0.0.1:3863", transport.ProtoAuto, []string{"127.0.0.1"}, 3863, ""},
		{"auto:127.0.0.1:3863", transport.ProtoAuto, []string{"127.0.0.1"}, 3863, "127.0.0.1:3863"},
		{"tcp:127.0.0.1:0", transport.ProtoTCP, []string{"127.0.0.1"}, 0, ""},
		{"sctp:10.0.0.1,10.0.0.2:3863", transport.ProtoSCTP, []string{"10.0.0.1", "10.0.0.2"}, 3863, ""},
		{"[::1]:9901", transport.ProtoAuto, []string{"::1"}, 9901, ""},
		{"sctp:[::1],127.0.0.1:3863", transport.ProtoSCTP, []string{"::1", "127.0.0.1"}, 3863, ""},
		{"[fe80::1%eth0]:3863", transport.ProtoAuto, []string{"fe80::1%eth0"}, 3863, ""},
		{":3863", transport.ProtoAuto, nil, 3863, ""},
		{"tcp::0", transport.ProtoTCP, nil, 0, ""},
		{"localhost:3863", transport.ProtoAuto, []string{"localhost"}, 3863, ""},
		{"sctp:registrar-1.example.org:3863", transport.ProtoSCTP, []string{"registrar-1.example.org"}, 3863, ""},
	} {
		sp, err := transport.ParseSpec(tc.in)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", tc.in, err)
			continue
		}
		if sp.Proto != tc.proto || !slices.Equal(sp.Hosts, tc.hosts) || sp.Port != tc.port {
			t.Errorf("ParseSpec(%q): got %v %q %d, want %v %q %d", tc.in, sp.Proto, sp.Hosts, sp.Port, tc.proto, tc.hosts, tc.port)
		}
		want := tc.str
		if want == "" {
			want = tc.in
		}
		if sp.String() != want {
			t.Errorf("ParseSpec(%q).String(): got %q, want %q", tc.in, sp.String(), want)
		}
	}
}

func TestParseSpec_Errors(t *testing.T) {
	for _, tc := range []struct{ in, says string }{
		{"", "missing port"},
		{"127.0.0.1", "missing port"},
		{"tcp:3863", "missing port"},
		{"udp:1.2.3.4:5", `unknown protocol "udp"`},
		{"127.0.0.1:http", "not a number"},
		{"127.0.0.1:65536", "not a number"},
		{"::1:3863", "needs brackets"},
		{"[::1:3863", "unterminated bracket"},
		{"[::1]x:3863", "unterminated bracket"},
		{"[127.0.0.1]:3863", "not an IPv6 address"},
		{"10.0.0.1,,10.0.0.2:3863", "empty host"},
		{"10.0.0.1,:3863", "empty host"},
		{"bad host!:3863", "neither an IP address nor a host name"},
	} {
		_, err := transport.ParseSpec(tc.in)
		if !errors.Is(err, transport.ErrBadSpec) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("ParseSpec(%q): got %v, want ErrBadSpec saying %q", tc.in, err, tc.says)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := transport.DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate(): %v", err)
	}
	c := transport.DefaultConfig()
	c.MaxMessageSize = 70000
	c.ReadTimeout = -time.Second
	c.WriteTimeout = -1
	c.SCTPAttemptTimeout = 0
	err := c.Validate()
	for _, field := range []string{"MaxMessageSize 70000", "ReadTimeout", "WriteTimeout", "SCTPAttemptTimeout"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Validate: got %v, want it to name %s", err, field)
		}
	}
	var zero transport.Config
	if zero.Validate() == nil {
		t.Error("the zero Config validated; want MaxMessageSize and SCTPAttemptTimeout errors")
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[transport.Kind]string{transport.KindTCP: "tcp", transport.KindSCTP: "sctp", transport.KindPipe: "pipe", 9: "Kind(9)"} {
		if k.String() != want {
			t.Errorf("Kind(%d).String(): got %q, want %q", k, k.String(), want)
		}
	}
}
