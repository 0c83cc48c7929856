package registrar_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/registrar"
)

// scrape returns the text of a registrar's /metrics.
func scrape(t *testing.T, r *testRegistrar) string {
	t.Helper()
	resp, err := http.Get("http://" + r.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sample finds the sample "name{labels} value" in a scrape ("" when
// absent).
func sample(body, series string) string {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// dashboardQueries walks the dashboard JSON and returns every PromQL
// query in it: panel targets and template variables.
func dashboardQueries(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && (k == "expr" || k == "definition" || (k == "query" && strings.Contains(s, "("))) {
				out = append(out, s)
			}
			out = append(out, dashboardQueries(e)...)
		}
	case []any:
		for _, e := range x {
			out = append(out, dashboardQueries(e)...)
		}
	}
	return out
}

// Ensure every metric the Grafana dashboard in docs/ queries exists in the
// /metrics of a running registrar that serves one PE (the per-pool series
// need a pool; every other one exists from the start), and that the
// dashboard has the structure Grafana imports.
func TestGrafanaDashboard_MetricsExist(t *testing.T) {
	data, err := os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	for _, k := range []string{"title", "uid", "panels", "schemaVersion", "templating"} {
		if _, ok := dash[k]; !ok {
			t.Errorf("the dashboard has no %q", k)
		}
	}
	queries := dashboardQueries(dash)
	names := map[string]bool{}
	for _, q := range queries {
		for _, n := range regexp.MustCompile(`\brsp_[a-zA-Z0-9_]+`).FindAllString(q, -1) {
			names[n] = true
		}
	}
	if len(names) < 15 {
		t.Fatalf("the dashboard queries only %d metrics (%v) in %d queries: the walk is broken", len(names), names, len(queries))
	}
	r := startRegistrar(t, "", nil)
	mustRegister(t, dial(t, r, true), "pool", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	body := scrape(t, r)
	var missing []string
	for n := range names {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(n) + `[{ ]`).MatchString(body) {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the dashboard queries metrics a fresh registrar does not export: %v", missing)
	}
	for _, p := range dash["panels"].([]any) {
		p := p.(map[string]any)
		if p["type"] == "row" {
			continue
		}
		if ts, _ := p["targets"].([]any); len(ts) == 0 || p["title"] == "" {
			t.Errorf("panel %v has no title or no target", p["title"])
		}
	}
}

// Ensure the leadership, staleness, member, pool and peer gauges report
// the registrar's state.
func TestMetrics_ClusterAndPools(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // an ENRP peer that never answers
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	r := startRegistrar(t, "", func(c *registrar.Config) {
		c.MetricsPoolTop = 2
		c.ENRPPeers = []string{"tcp:" + ln.Addr().String()}
		c.MentorTimeout = 0 // the peer never answers
		c.PeerHeartbeat = registrar.Duration(50 * time.Millisecond)
	})
	pe := dial(t, r, true)
	id := uint32(1)
	for pool, n := range map[asap.PoolHandle]int{"big": 3, "mid": 2, "small": 1} {
		for i := 0; i < n; i++ {
			mustRegister(t, pe, pool, testPE(id, uint16(7000+id), asap.Policy{Type: asap.PolicyRoundRobin}))
			id++
		}
	}
	var body string
	waitFor(t, 10*time.Second, "the ENRP peer to count as up", func() bool {
		body = scrape(t, r)
		return sample(body, `rsp_enrp_peers{state="up"}`) == "1"
	})
	for series, want := range map[string]string{
		"rsp_raft_is_leader":                         "1",
		"rsp_stale":                                  "0",
		"rsp_raft_leader_changes_total":              "1",
		"rsp_raft_last_contact_seconds":              "0",
		"rsp_raft_voters":                            "1",
		`rsp_cluster_members{status="alive"}`:        "1",
		`rsp_pool_pes{pool="big"}`:                   "3",
		`rsp_pool_pes{pool="mid"}`:                   "2",
		`rsp_pool_pes{pool="small"}`:                 "", // beyond metrics_pool_top
		`rsp_enrp_peers{state="down"}`:               "0",
		`rsp_registrations_total{result="accepted"}`: "6",
	} {
		if got := sample(body, series); got != want {
			t.Errorf("%s = %q, want %q", series, got, want)
		}
	}
	// metrics_pool_top is reloadable.
	next := r.Config()
	next.MetricsPoolTop = 0
	if _, err := r.Reload(next); err != nil {
		t.Fatal(err)
	}
	if body := scrape(t, r); strings.Contains(body, "rsp_pool_pes{") {
		t.Error("rsp_pool_pes still exported with metrics_pool_top 0")
	}
}
