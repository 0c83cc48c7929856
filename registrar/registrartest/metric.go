package registrartest

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Metric reads a series from the /metrics of the admin API at httpAddr:
// a name alone gives the sum of every label set of it
// ("rsp_pe_removals_total"), name{labels} one series
// (`rsp_registrations_total{result="accepted"}`). A series that is not
// there reads 0.
func Metric(t testing.TB, httpAddr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name, value := line[:i], line[i+1:]
		if name != series && !(strings.HasPrefix(name, series+"{") && !strings.Contains(series, "{")) {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}
