package registrar_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/registrar"
)

// Ensure the dashboard's files are served at /ui/ (from the binary, with
// the page's own script and style and nothing from elsewhere) and that
// -ui=false turns them off while the API stays.
func TestDashboard_ServedAndOff(t *testing.T) {
	r := startRegistrar(t, "", nil)
	base := "http://" + r.HTTPAddr()
	for path, want := range map[string]string{"/ui/": "<script src=\"app.js\">", "/ui/app.js": "/v1/watch", "/ui/app.css": "svg"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d, %d bytes without %q", path, resp.StatusCode, len(b), want)
		}
		if strings.Contains(string(b), "http://") || strings.Contains(string(b), "https://") {
			if path != "/ui/app.js" || strings.Count(string(b), "http://www.w3.org/2000/svg") != strings.Count(string(b), "http://") {
				t.Errorf("GET %s refers to another site: the dashboard must work offline", path)
			}
		}
	}
	off := startRegistrar(t, "", func(c *registrar.Config) { c.UI = false })
	for path, want := range map[string]int{"/ui/": http.StatusNotFound, "/v1/pools": http.StatusOK} {
		resp, err := http.Get("http://" + off.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("with ui off, GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// chromium finds the browser: a test that needs it fails under CI=true
// without it (.ci/run installs Debian's chromium) and skips elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (CI=true): .ci/run installs it with apt-get install chromium")
	}
	t.Skip("browser test: install chromium (apt-get install chromium) to run it")
	return ""
}

// browser starts headless chromium with a fresh profile, as root on a
// closed network can run it; it ends with the test.
func browser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// distinctColours counts the colours of a PNG.
func distinctColours(t *testing.T, b []byte) (int, image.Rectangle) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	seen := map[[4]uint32]bool{}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y += 2 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 2 {
			r, g, b, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, b, a}] = true
		}
	}
	return len(seen), bounds
}

// Ensure the dashboard in a real browser shows the pools and PEs the test
// registered, and, when the PEs' home registrar of a 3-node cluster is
// killed, shows their new homes and the member failed without a reload;
// its screenshot is not blank.
func TestDashboard_BrowserTakeover(t *testing.T) {
	path := chromium(t)
	nodes := startCluster(t, 3, func(c *registrar.Config) {
		c.KeepAliveInterval = registrar.Duration(200 * time.Millisecond)
		c.KeepAliveTimeout = registrar.Duration(3 * time.Second)
	})
	victim := followerOf(nodes)
	var viewed *testRegistrar
	survivors := map[string]bool{}
	for _, r := range nodes {
		if r != victim {
			viewed = r
			survivors[fmt.Sprintf("0x%08x", r.ID())] = true
		}
	}
	victimID := fmt.Sprintf("0x%08x", victim.ID())
	pe := newASAPPE(t)
	cl := dial(t, victim, true)
	const n = 4
	for i := uint32(1); i <= n; i++ {
		e := pe.element(i)
		e.Policy = lu(uint32(i) * 0x20000000)
		mustRegister(t, cl, "dash-pool", e)
	}
	other := newASAPPE(t)
	mustRegister(t, dial(t, viewed, true), "other-pool", other.element(9))
	waitValue(t, 10*time.Second, "replication to the viewed registrar", func() int { _, c := viewed.Handlespace().Counts(); return c }, n+1)

	ctx := browser(t, path)
	url := "http://" + viewed.HTTPAddr() + "/ui/#pool=dash-pool"
	if err := chromedp.Do(ctx, chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS(`#pools tr[data-pool="dash-pool"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#pools tr[data-pool="other-pool"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#pes tr[data-pe]`))); err != nil {
		t.Fatalf("load %s: %v", url, err)
	}
	homes := func() map[string]string {
		m, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`Object.fromEntries([...document.querySelectorAll("#pes tr[data-pe]")].map(r => [r.dataset.pe, r.querySelector("td.home").textContent]))`))
		if err != nil {
			html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("pes").outerHTML`))
			t.Fatalf("read the PE rows: %v\n%s", err, html)
		}
		return m
	}
	text := func(js string) string {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return s
	}
	waitPage := func(what string, cond func() (bool, string)) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			ok, saw := cond()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the page did not show %s within 30 s; it shows %s", what, saw)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitPage("the 4 PEs at their home", func() (bool, string) {
		h := homes()
		ok := len(h) == n
		for _, home := range h {
			ok = ok && home == victimID
		}
		return ok, fmt.Sprint(h)
	})
	if c := text(`document.querySelector('#pools tr[data-pool="dash-pool"] td.pe-count').textContent`); c != fmt.Sprint(n) {
		t.Errorf("the pool row shows %s PEs, want %d", c, n)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.notReloaded = true`)); err != nil {
		t.Fatal(err)
	}

	victim.Crash()
	waitPage("every PE at a surviving registrar", func() (bool, string) {
		h := homes()
		ok := len(h) == n
		for _, home := range h {
			ok = ok && survivors[home]
		}
		return ok, fmt.Sprint(h)
	})
	waitPage("the killed registrar as failed", func() (bool, string) {
		s := text(`(document.querySelector('#members tr[data-member="` + victimID + `"] td:nth-child(3)') || {}).textContent || "no row"`)
		return s == "failed", s
	})
	if still, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.notReloaded === true`)); err != nil || !still {
		t.Errorf("the page was reloaded (%v): it must update from the stream", err)
	}
	if log := text(`document.getElementById("events").textContent`); !strings.Contains(log, "(takeover)") {
		t.Errorf("the event log shows no takeover: %q", log)
	}

	// A few load samples for the chart before the picture.
	if err := chromedp.Do(ctx, chromedp.Sleep(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	out := filepath.Join(t.TempDir(), "dashboard.png")
	if dst := os.Getenv("DASHBOARD_SCREENSHOT"); dst != "" {
		out = dst
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	colours, bounds := distinctColours(t, shot)
	t.Logf("screenshot %s: %dx%d, %d colours", out, bounds.Dx(), bounds.Dy(), colours)
	if colours < 64 || bounds.Dx() < 800 {
		t.Errorf("the screenshot looks blank: %d distinct colours at %v", colours, bounds)
	}
}

// Ensure the dashboard works behind the admin API's tokens: it asks for
// a token when the API refuses it, and with the read token shows the
// pools and follows the change stream (which it reads with the token).
func TestDashboard_BrowserToken(t *testing.T) {
	path := chromium(t)
	r := startRegistrar(t, "", func(c *registrar.Config) { c.HTTPTokensFile = writeTokens(t) })
	mustRegister(t, dial(t, r, true), "secured", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	ctx := browser(t, path)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+r.HTTPAddr()+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`#token-form`))); err != nil {
		t.Fatalf("the page did not ask for a token: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`#token`), readSecret), chromedp.Click(chromedp.CSS(`#token-form button`)),
		chromedp.WaitVisible(chromedp.CSS(`#pools tr[data-pool="secured"]`))); err != nil {
		t.Fatalf("with the read token the pool did not show: %v", err)
	}
	// Live: a PE registered now shows up in the pool's count.
	mustRegister(t, dial(t, r, true), "secured", testPE(2, 7002, asap.Policy{Type: asap.PolicyRoundRobin}))
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#pools tr[data-pool="secured"] td.pe-count').textContent`))
		if err == nil && n == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page shows %q PEs (%v) 20 s after the second registration, want 2 from the stream", n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if hidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("token-form").hidden`)); err != nil || !hidden {
		t.Errorf("the token form still shows (%v)", err)
	}
}
