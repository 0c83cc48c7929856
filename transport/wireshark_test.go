package transport_test

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Wire vectors of docs rserpool-wire.md section 10 (tshark decodes each
// cleanly over SCTP).
var (
	vecASAP = []string{
		"010000400009000c4563686f506f6f6c000a0030123456780000000000007530000400181b58000000010008c0a8010a000100080a00000a0008000800000001", // V1 REGISTRATION
		"050000180009000b4672616374616c00803f000800000003", // V2 HANDLE_RESOLUTION
		"060000800009000b4672616374616c000008000c4000000140000000000a00380a0b0c0d111111110000ea600005001c1f9000010002001420010db80000000000000000000000010008000c4000000140000000000a002c01020304222222220000ea60000400101f90000100010008c00002070008000c4000000180000000", // V3
		"0701001c111111110009000c4563686f506f6f6c000e000812345678",                                 // V4 ENDPOINT_KEEP_ALIVE
		"0301002c0009000c4563686f506f6f6c000e000812345678000c0014000500100008000c0000000200000005", // V8 REGISTRATION_RESPONSE
	}
	vecENRP = []string{
		"010100341111111122222222000f000629a50000000b0020111111110004001826ad000000010008c0a80101000100080a000001",                                                                 // V5 PRESENCE
		"040000541111111122222222000000000009000c4563686f506f6f6c000a0038123456781111111100007530000400101b58000000010008c0a8010a0008000800000001000400109c40000000010008c0a8010a", // V6 HANDLE_UPDATE
		"0302005011111111222222220009000c4563686f506f6f6c000a0038123456781111111100007530000400101b58000000010008c0a8010a0008000800000001000400109c40000000010008c0a8010a",         // V7 HANDLE_TABLE_RESPONSE
	}
)

// needTools skips, or fails under CI=true, when a tool is missing.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI=true but %s is missing (apt-get install tshark)", tool)
			}
			t.Skipf("%s is missing (apt-get install tshark)", tool)
		}
	}
}

// stream concatenates messages (hex) and returns the bytes and the offset
// where each message starts.
func stream(t *testing.T, msgs []string) ([]byte, []int) {
	var b []byte
	var starts []int
	for _, m := range msgs {
		raw, err := hex.DecodeString(m)
		if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, len(b))
		b = append(b, raw...)
	}
	return b, starts
}

// segment cuts b into segments whose sizes cycle through sizes. It checks
// that some message is split (also inside its 4-byte header) and some
// segment holds several messages, so the test covers both.
func segment(t *testing.T, b []byte, starts []int, sizes []int) [][]byte {
	var segs [][]byte
	split, headerSplit, coalesced := false, false, false
	for off, i := 0, 0; off < len(b); i++ {
		end := min(off+sizes[i%len(sizes)], len(b))
		segs = append(segs, b[off:end])
		n := 0
		for _, s := range starts {
			if s >= off && s < end {
				n++
				if end < len(b) && s+4 > end {
					headerSplit = true
				}
			}
			if s > off && s < end && len(segs) > 1 {
				split = true // a message began in the previous segment
			}
		}
		if n >= 2 {
			coalesced = true
		}
		off = end
	}
	if !split || !headerSplit || !coalesced {
		t.Fatalf("segmentation does not cover the cases: split=%v headerSplit=%v coalesced=%v", split, headerSplit, coalesced)
	}
	return segs
}

// text2pcap writes segments as consecutive TCP segments of one stream.
func text2pcap(t *testing.T, segs [][]byte, srcPort, dstPort int) string {
	dir := t.TempDir()
	var dump strings.Builder
	for _, seg := range segs {
		for off := 0; off < len(seg); off += 16 {
			fmt.Fprintf(&dump, "%06x", off)
			for _, x := range seg[off:min(off+16, len(seg))] {
				fmt.Fprintf(&dump, " %02x", x)
			}
			dump.WriteByte('\n')
		}
	}
	txt, pcap := filepath.Join(dir, "stream.txt"), filepath.Join(dir, "stream.pcap")
	if err := os.WriteFile(txt, []byte(dump.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("text2pcap", "-q", "-T", fmt.Sprintf("%d,%d", srcPort, dstPort), txt, pcap).CombinedOutput()
	if err != nil {
		t.Fatalf("text2pcap: %v\n%s", err, out)
	}
	return pcap
}

// tshark runs tshark on pcap and returns its non-empty stdout lines.
func tshark(t *testing.T, pcap string, args ...string) []string {
	cmd := exec.Command("tshark", append([]string{"-r", pcap}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// fieldValues splits tshark -T fields output of one field into its values.
func fieldValues(lines []string) []string {
	var out []string
	for _, l := range lines {
		for _, v := range strings.Split(l, ",") {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

func msgTypes(msgs []string) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, fmt.Sprint(int(m[0]-'0')*16+int(m[1]-'0')))
	}
	return out
}

// TestWiresharkLuaTCP checks testdata/rsp_tcp.lua: tshark decodes every
// ASAP and ENRP message of TCP streams whose segments split and coalesce
// messages, with nothing malformed; also on another port and with mux data
// frames.
func TestWiresharkLuaTCP(t *testing.T) {
	needTools(t, "tshark", "text2pcap")
	plugin, err := filepath.Abs("testdata/rsp_tcp.lua")
	if err != nil {
		t.Fatal(err)
	}
	lua := "lua_script:" + plugin
	sizes := []int{2, 7, 1, 150, 33, 64, 5, 300, 3}
	bad := []string{"-Y", "_ws.malformed || _ws.expert.severity >= warning"}

	for _, tc := range []struct {
		name      string
		msgs      []string
		port      int
		field     string
		decodeAs  []string
		wantTypes []string
	}{
		{"ASAP", append(slices.Clone(vecASAP), vecASAP...), 3863, "asap.message_type", nil, nil},
		{"ENRP", append(slices.Clone(vecENRP), vecENRP...), 9901, "enrp.message_type", nil, nil},
		{"ASAPOtherPortDecodeAs", vecASAP, 5000, "asap.message_type", []string{"-d", "tcp.port==5000,asaptcp"}, nil},
		{"ENRPOtherPortPref", vecENRP, 5001, "enrp.message_type", []string{"-o", "enrptcp.ports:5001"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, starts := stream(t, tc.msgs)
			pcap := text2pcap(t, segment(t, b, starts, sizes), 40000, tc.port)
			args := append([]string{"-X", lua}, tc.decodeAs...)
			got := fieldValues(tshark(t, pcap, append(slices.Clone(args), "-T", "fields", "-e", tc.field)...))
			if want := msgTypes(tc.msgs); !slices.Equal(got, want) {
				t.Errorf("decoded message types: got %v, want %v", got, want)
			}
			if lines := tshark(t, pcap, append(slices.Clone(args), bad...)...); len(lines) != 0 {
				t.Errorf("malformed or warnings:\n%s", strings.Join(lines, "\n"))
			}
		})
	}

	t.Run("WithoutPluginIsMalformed", func(t *testing.T) {
		// The control: Wireshark's own ASAP-over-TCP dissector takes each
		// segment as one message.
		b, starts := stream(t, vecASAP)
		pcap := text2pcap(t, segment(t, b, starts, sizes), 40000, 3863)
		if lines := tshark(t, pcap, "-Y", "_ws.malformed"); len(lines) == 0 {
			t.Error("without the plugin nothing is malformed; the test would not notice a broken plugin")
		}
	})

	t.Run("MuxDataFrames", func(t *testing.T) {
		msgs := []string{vecASAP[1], "ff00000d000004d268656c6c6f", vecASAP[3], "ff00000800000001", vecASAP[1]}
		b, starts := stream(t, msgs)
		pcap := text2pcap(t, segment(t, b, starts, []int{2, 7, 1, 150, 33, 64, 5, 3}), 40000, 5002)
		args := []string{"-X", lua, "-d", "tcp.port==5002,asaptcp"}
		lines := tshark(t, pcap, append(slices.Clone(args), "-T", "fields", "-E", "separator=|", "-e", "asap.message_type", "-e", "asaptcp.data_ppid")...)
		var types, ppids []string
		for _, l := range lines {
			f := strings.Split(l, "|")
			types = append(types, fieldValues(f[:1])...)
			ppids = append(ppids, fieldValues(f[1:])...)
		}
		if want := []string{"5", "7", "5"}; !slices.Equal(types, want) {
			t.Errorf("ASAP types: got %v, want %v", types, want)
		}
		if want := []string{"1234", "1"}; !slices.Equal(ppids, want) {
			t.Errorf("data frame PPIDs: got %v, want %v", ppids, want)
		}
		if lines := tshark(t, pcap, append(slices.Clone(args), bad...)...); len(lines) != 0 {
			t.Errorf("malformed or warnings:\n%s", strings.Join(lines, "\n"))
		}
	})
}
