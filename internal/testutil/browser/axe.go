package browser

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/flowgate/flowgate/internal/testutil/prereq"
)

// Phone is the width, in CSS pixels, of the narrowest phone the pages must
// be readable on without scrolling sideways; PhoneHeight goes with it.
const (
	Phone       = 375
	PhoneHeight = 740
)

// Violation is one rule axe-core found broken on a page.
type Violation struct {
	// ID is the axe rule, such as "color-contrast".
	ID string `json:"id"`
	// Impact is "minor", "moderate", "serious" or "critical".
	Impact      string `json:"impact"`
	Description string `json:"description"`
	// Targets are the CSS selectors of the failing elements.
	Targets []string `json:"targets"`
}

// Serious reports whether the violation's impact is serious or critical:
// what a page must never have.
func (v Violation) Serious() bool { return v.Impact == "serious" || v.Impact == "critical" }

func (v Violation) String() string {
	return fmt.Sprintf("%s (%s): %s at %v", v.ID, v.Impact, v.Description, v.Targets)
}

// axeSource reads axe-core from the axe test peer; a missing install is a
// missing prerequisite.
func axeSource(t testing.TB) string {
	t.Helper()
	dir, err := prereq.PeerDir("axe")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(dir, "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		prereq.Missing(t, "axe-core peer not installed: run `npm ci --prefix test/peers/axe` (%v)", err)
	}
	return string(src)
}

// axeRun runs axe on the whole document and flattens its violations; the
// nodes' targets are selectors, or lists of them inside iframes and shadow
// roots, joined here with " >> ".
const axeRun = `axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v => ({
	id: v.id, impact: v.impact || '', description: v.description,
	targets: v.nodes.map(n => n.target.map(s => Array.isArray(s) ? s.join(' >> ') : s).join(' >> ')),
})))`

// Axe injects axe-core into the page ctx shows and returns what it finds
// broken. The script goes in through the DevTools protocol, so a page's
// Content-Security-Policy does not have to allow it.
func Axe(t testing.TB, ctx context.Context) []Violation {
	t.Helper()
	src := axeSource(t)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](src)); err != nil {
		t.Fatalf("axe: injecting axe-core: %v", err)
	}
	vs, err := chromedp.Run(ctx, chromedp.Evaluate[[]Violation](axeRun, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe: running: %v", err)
	}
	return vs
}

// Viewport sets the page's layout viewport to width × height CSS pixels.
// It emulates a desktop window, not a phone: the page is laid out at that
// width whether or not it has a meta viewport, so a page too wide for it
// shows as ScrollsSideways.
func Viewport(t testing.TB, ctx context.Context, width, height int64) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, height)); err != nil {
		t.Fatalf("viewport %dx%d: %v", width, height, err)
	}
}

// ScrollsSideways reports whether the page is wider than the viewport, so
// that reading it needs horizontal scrolling.
func ScrollsSideways(t testing.TB, ctx context.Context) bool {
	t.Helper()
	wide, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
	if err != nil {
		t.Fatalf("page width: %v", err)
	}
	return wide
}

// Desktop and DesktopHeight are a common laptop window.
const (
	Desktop       = 1280
	DesktopHeight = 800
)

// ScreenshotsEnv names the folder CheckPage saves its screenshots to
// (`./scripts/test -update` sets it to docs/screenshots); unset, none are
// taken.
const ScreenshotsEnv = "FLOWGATE_SCREENSHOTS"

// CheckPage checks the current page at a phone's and a desktop's width:
// axe-core's serious and critical violations are errors (the others are
// logged), and so is scrolling sideways on the phone. With ScreenshotsEnv
// set it also saves the whole page at both widths as NAME-375.png and
// NAME-1280.png (NAME made file-safe).
func CheckPage(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	for _, w := range []struct{ width, height int64 }{{Phone, PhoneHeight}, {Desktop, DesktopHeight}} {
		Viewport(t, ctx, w.width, w.height)
		Screenshot(t, ctx, fmt.Sprintf("%s-%d", name, w.width))
		for _, v := range Axe(t, ctx) {
			if v.Serious() {
				t.Errorf("%s at %dpx: %s", name, w.width, v)
			} else {
				t.Logf("%s at %dpx: %s", name, w.width, v)
			}
		}
		if w.width == Phone && ScrollsSideways(t, ctx) {
			t.Errorf("%s at %dpx scrolls sideways", name, w.width)
		}
	}
}

// Screenshot saves the whole current page as NAME.png in the folder named
// by ScreenshotsEnv, if it is set.
func Screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv(ScreenshotsEnv)
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	file := filepath.Join(dir, fileSafe(name)+".png")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileSafe(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}
