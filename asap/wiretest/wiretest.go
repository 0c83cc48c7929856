// Package wiretest checks encoded ASAP and ENRP messages with Wireshark's
// dissectors, the project's wire-format oracle. It wraps payloads into a
// capture with text2pcap (SCTP DATA with a PPID, UDP, or TCP) and decodes
// it with tshark, returning the fields asked for and any malformed-packet
// or expert warning.
//
// Tests call Require first: without tshark it skips, except when CI=true
// (or RSP_REQUIRE_TSHARK=1), where a missing tshark is a failure.
package wiretest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Wrap says how payloads are put into the capture.
type Wrap struct {
	Args []string // text2pcap arguments, e.g. -S 3863,3863,11
}

// Standard wrappings.
var (
	SCTPASAP = Wrap{Args: []string{"-S", "3863,3863,11"}} // ASAP over SCTP, PPID 11
	SCTPENRP = Wrap{Args: []string{"-S", "9901,9901,12"}} // ENRP over SCTP, PPID 12
	UDPASAP  = Wrap{Args: []string{"-u", "3863,3863"}}    // ASAP over UDP (announces)
	UDPENRP  = Wrap{Args: []string{"-u", "9901,9901"}}    // ENRP over UDP (multicast PRESENCE)
)

// Require skips the test when tshark or text2pcap is missing, or fails it
// when CI=true or RSP_REQUIRE_TSHARK=1.
func Require(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"tshark", "text2pcap"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" || os.Getenv("RSP_REQUIRE_TSHARK") == "1" {
				t.Fatalf("%s is required (CI=true) but not installed: apt-get install tshark", tool)
			}
			t.Skipf("%s not installed (apt-get install tshark); skipping Wireshark conformance", tool)
		}
	}
}

// Packet is what tshark made of one payload.
type Packet struct {
	Fields    map[string][]string // requested field -> values (all occurrences)
	Malformed bool
	Expert    []string // expert messages of severity warning or worse
}

// WarningSeverity is tshark's expert severity for warnings (PI_WARN).
const WarningSeverity = 0x00600000

// SequenceGroup is tshark's expert group of the transport's sequence
// analysis (PI_SEQUENCE): retransmissions, duplicate SACKs, segments the
// capture missed. A live capture on a busy machine has them; they say
// nothing about our wire format, so Read does not count them as problems.
const SequenceGroup = 0x02000000

// Decode wraps each payload into one packet and returns tshark's view of
// each, in order. extra are more tshark arguments (e.g. -X lua_script:...).
func Decode(t testing.TB, w Wrap, payloads [][]byte, fields []string, extra ...string) []Packet {
	t.Helper()
	dir := t.TempDir()
	var txt bytes.Buffer
	for _, p := range payloads {
		for off := 0; off < len(p); off += 16 {
			end := min(off+16, len(p))
			fmt.Fprintf(&txt, "%06x", off)
			for _, c := range p[off:end] {
				fmt.Fprintf(&txt, " %02x", c)
			}
			txt.WriteByte('\n')
		}
	}
	in := filepath.Join(dir, "in.txt")
	pcap := filepath.Join(dir, "out.pcap")
	if err := os.WriteFile(in, txt.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-q"}, w.Args...)
	args = append(args, in, pcap)
	if out, err := exec.Command("text2pcap", args...).CombinedOutput(); err != nil {
		t.Fatalf("text2pcap %v: %v\n%s", args, err, out)
	}
	return Read(t, pcap, fields, extra...)
}

// Read decodes a capture file and returns one Packet per frame that has
// any of the requested fields or a problem.
func Read(t testing.TB, pcap string, fields []string, extra ...string) []Packet {
	t.Helper()
	args := append([]string{"-r", pcap}, extra...)
	args = append(args, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|",
		"-e", "frame.number", "-e", "_ws.malformed", "-e", "_ws.expert.message", "-e", "_ws.expert.severity", "-e", "_ws.expert.group")
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command("tshark", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %v: %v\n%s", args, err, stderr.String())
	}
	var pkts []Packet
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		cols := strings.Split(line, "\t")
		for len(cols) < 5+len(fields) {
			cols = append(cols, "")
		}
		p := Packet{Fields: map[string][]string{}, Malformed: cols[1] != ""}
		msgs := splitAgg(cols[2])
		sevs := splitAgg(cols[3])
		groups := splitAgg(cols[4])
		for i, s := range sevs {
			v, err := strconv.ParseUint(s, 0, 32) // tshark prints it in decimal
			if err != nil || v < WarningSeverity || i >= len(msgs) {
				continue
			}
			if i < len(groups) {
				if g, err := strconv.ParseUint(groups[i], 0, 32); err == nil && g == SequenceGroup {
					continue
				}
			}
			p.Expert = append(p.Expert, msgs[i])
		}
		for i, f := range fields {
			p.Fields[f] = splitAgg(cols[5+i])
		}
		pkts = append(pkts, p)
	}
	return pkts
}

func splitAgg(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "|")
}

// Problems describes what is wrong with a packet, or "" when it decoded
// cleanly.
func (p Packet) Problems() string {
	var s []string
	if p.Malformed {
		s = append(s, "malformed")
	}
	if len(p.Expert) > 0 {
		s = append(s, "expert: "+strings.Join(p.Expert, "; "))
	}
	return strings.Join(s, ", ")
}

// First returns the first value of a field, or "".
func (p Packet) First(field string) string {
	if v := p.Fields[field]; len(v) > 0 {
		return v[0]
	}
	return ""
}
