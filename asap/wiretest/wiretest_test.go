package wiretest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dsackFrame is an Ethernet/IPv4/TCP ACK whose SACK block lies below its
// acknowledgement number: Wireshark flags it "D-SACK Sequence", a warning
// of the sequence-analysis group, as it does for real duplicate segments
// on a busy loopback.
const dsackFrame = `0000  00 00 00 00 00 02 00 00 00 00 00 01 08 00 45 00
0010  00 34 00 01 00 00 40 06 00 00 7f 00 00 01 7f 00
0020  00 01 9c 40 0f 17 00 00 00 64 00 00 03 e8 80 10
0030  ff ff 00 00 00 00 01 01 05 0a 00 00 03 20 00 00
0040  03 84
`

// Ensure that a transport's sequence-analysis warning is not a problem of
// the packet (a live capture failed on a D-SACK), while tshark does report
// it as a warning.
func TestRead_IgnoresSequenceAnalysis(t *testing.T) {
	Require(t)
	dir := t.TempDir()
	txt, pcap := filepath.Join(dir, "f.txt"), filepath.Join(dir, "f.pcap")
	if err := os.WriteFile(txt, []byte(dsackFrame), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("text2pcap", "-q", txt, pcap).CombinedOutput(); err != nil {
		t.Fatalf("text2pcap: %v\n%s", err, out)
	}
	raw, err := exec.Command("tshark", "-r", pcap, "-T", "fields", "-e", "_ws.expert.message", "-e", "_ws.expert.severity").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	if !strings.Contains(string(raw), "D-SACK") || !strings.Contains(string(raw), "6291456") {
		t.Fatalf("the test frame no longer raises tshark's D-SACK warning: %q", raw)
	}
	pkts := Read(t, pcap, []string{"tcp.port"}, "-Y", "_ws.expert.severity >= 6291456")
	if len(pkts) != 1 {
		t.Fatalf("Read returned %d packets, want the one with the warning", len(pkts))
	}
	if pr := pkts[0].Problems(); pr != "" {
		t.Errorf("Problems() = %q, want none for a sequence-analysis warning", pr)
	}
}
