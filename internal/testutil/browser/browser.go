// Package browser starts a real headless Chromium for tests of Flowgate's
// pages, driven with chromedp. Debian's chromium package provides the
// browser; the test command installs it.
package browser

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/flowgate/flowgate/internal/testutil/prereq"
)

// candidates are where Debian and other distributions put the browser.
func candidates() []string {
	return []string{"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"}
}

// Find returns the browser's path, or "" when none is installed.
func Find() string {
	if p := os.Getenv("FLOWGATE_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range candidates() {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// New starts a fresh headless browser with an empty profile and returns a
// context for chromedp actions, closed with the test. Without a browser the
// test fails when CI=true and is skipped otherwise. A browser that exits
// before it is up is started once more: on a loaded machine Chromium now and
// then dies at launch (seen in CI), which says nothing about the pages.
func New(t testing.TB) context.Context {
	t.Helper()
	path := Find()
	if path == "" {
		prereq.Missing(t, "browser: no Chromium found (apt-get install chromium)")
	}
	ctx, cancel, err := start(path, t.TempDir())
	if err != nil {
		t.Logf("browser: starting %s: %v; trying once more", path, err)
		ctx, cancel, err = start(path, t.TempDir())
	}
	if err != nil {
		t.Fatalf("browser: starting %s: %v", path, err)
	}
	t.Cleanup(cancel)
	return ctx
}

// start launches the browser at path with profile as its user data
// directory and waits until it answers; cancel stops it.
func start(path, profile string) (ctx context.Context, cancel func(), err error) {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root in CI containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		// The machine has no network beyond loopback: keep Chromium from
		// reaching out (and failing, many times a second) on its own.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	cancel = func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	}
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		return nil, nil, err
	}
	return ctx, cancel, nil
}
