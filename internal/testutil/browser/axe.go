package browser

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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

// CheckPage checks the current page at a phone's and a desktop's width:
// axe-core's serious and critical violations are errors (the others are
// logged), and so is scrolling sideways on the phone.
func CheckPage(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	for _, w := range []struct{ width, height int64 }{{Phone, PhoneHeight}, {Desktop, DesktopHeight}} {
		Viewport(t, ctx, w.width, w.height)
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
