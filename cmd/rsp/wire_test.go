package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// Ensure that decode then encode gives back the same bytes for the digest's
// vectors and for a message of every type.
func TestDecodeEncodeRoundTrip(t *testing.T) {
	f, err := os.Open("../../asap/testdata/wire-vectors.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type vec struct{ proto, name, hex string }
	var vecs []vec
	s := bufio.NewScanner(f)
	for s.Scan() {
		c := strings.Split(s.Text(), "\t")
		if len(c) == 3 && (c[0] == "asap" || c[0] == "enrp") {
			vecs = append(vecs, vec{c[0], c[1], c[2]})
		}
	}
	vecs = append(vecs,
		vec{"asap", "cookie", "0b00000c000d000801020304"},
		vec{"asap", "announce", "0a0000081111111" + "1"},
		vec{"asap", "error", "0e000014000c00100001000c41230008deadbeef"},
		vec{"enrp", "init takeover", "07000010111111112222222233333333"},
		vec{"enrp", "list request", "0500000c1111111122222222"},
	)
	for _, v := range vecs {
		raw, _ := hex.DecodeString(v.hex)
		js, err := decodeJSON(v.proto, raw)
		if err != nil {
			t.Fatalf("%s: decode: %v", v.name, err)
		}
		// The JSON says its protocol, so encode needs no flag.
		back, err := encodeJSON("", js)
		if err != nil {
			t.Fatalf("%s: encode %s: %v", v.name, js, err)
		}
		if !bytes.Equal(back, raw) {
			t.Errorf("%s: round trip gave %x, want %x", v.name, back, raw)
		}
	}
}

// Ensure that invalid input fails with a message naming field and offset.
func TestDecodeErrors(t *testing.T) {
	cases := []struct{ proto, hex, want string }{
		{"asap", "01000040000900", "header at offset 0: truncated"},
		{"asap", "0500000c0009000200000000", "handle_resolution.pool_handle at offset 4: bad length"},
		{"enrp", "0400000c1111111122222222", "enrp: handle_update at offset 12"},
		{"asap", "zz", "not hex"},
		{"sctp", "00", "want asap or enrp"},
	}
	for _, c := range cases {
		raw, err := parseHex(c.hex)
		if err == nil {
			_, err = decodeJSON(c.proto, raw)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: got %v, want an error containing %q", c.proto, c.hex, err, c.want)
		}
	}
	if code := runDecode([]string{"0500"}); code != 1 {
		t.Errorf("runDecode of a bad message exited %d, want 1", code)
	}
}

// Ensure that encode names the bad field of its JSON.
func TestEncodeErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"protocol":"asap","type":"ASAP_HANDLE_RESOLUTION","message":{"pool_handle":""}}`, "pool_handle"},
		{`{"protocol":"asap","type":"ASAP_NOPE","message":{}}`, "unknown ASAP message type"},
		{`{"protocol":"asap","type":"ASAP_HANDLE_RESOLUTION","message":{"pool_handel":"x"}}`, "unknown field"},
		{`{"protocol":"enrp","type":"ENRP_HANDLE_UPDATE","message":{"action":"MOVE_PE"}}`, "unknown update action"},
	}
	for _, c := range cases {
		_, err := encodeJSON("", []byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.in, err, c.want)
		}
	}
}
