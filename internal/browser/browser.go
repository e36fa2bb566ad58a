// Package browser drives headless Chromium from tests (chromedp) and keeps a screenshot of every page it
// checks under artifacts/, so a failing browser test leaves evidence behind.
package browser

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ExecPath finds Chromium: $CHROMIUM_PATH, then Debian's chromium, then other common names.
func ExecPath() (string, error) {
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no Chromium found: run ./test.sh (it installs Debian's chromium) or set CHROMIUM_PATH")
}

// New starts a headless Chromium for the test and returns a context driving one tab. Without Chromium the
// test fails, unless SKIP_BROWSER_TESTS=1 says on purpose that this machine cannot run a browser.
func New(t *testing.T) context.Context {
	t.Helper()
	path, err := ExecPath()
	if err != nil {
		if os.Getenv("SKIP_BROWSER_TESTS") == "1" {
			t.Skip("SKIP_BROWSER_TESTS=1: ", err)
		}
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox, // CI containers run as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		// This machine's network is closed: Chromium must not try to reach Google's services.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first run starts the browser; it must not carry a context timeout, or the timeout ends the
	// browser, so a watchdog bounds it instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx, chromedp.Navigate("about:blank")) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting Chromium at %s: %v", path, err)
		}
	case <-time.After(time.Minute):
		cancelCtx()
		t.Fatalf("Chromium at %s did not start within a minute", path)
	}
	return ctx
}

// stepTimeout bounds every call into the browser, so a page that never shows what the test waits for (or
// a browser that stopped answering) fails the test instead of hanging the package until go test's timeout.
const stepTimeout = 30 * time.Second

// Do runs steps with a bound.
func Do(ctx context.Context, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// Run runs one action that yields a value (a script's result, an attribute), with the same bound as Do.
func Run[T any](ctx context.Context, action chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	return chromedp.Run(ctx, action)
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// Screenshot saves the whole page as a PNG (quality 100 means PNG to Chromium) in artifacts/<test>/<name>.png.
func Screenshot(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	// A page that reloads itself (the status page does once the subscription is ready) has no layout for
	// a moment: Chromium then refuses with "0 width". Wait for the new document and try again.
	var png []byte
	var err error
	for range 3 {
		if err = Do(ctx, chromedp.WaitReady("body")); err != nil {
			continue
		}
		if png, err = Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			break
		}
	}
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	dir := filepath.Join(ArtifactsDir(), unsafeName.ReplaceAllString(t.Name(), "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("artifacts: %v", err)
		return ""
	}
	path := filepath.Join(dir, unsafeName.ReplaceAllString(name, "_")+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("artifacts: %v", err)
		return ""
	}
	t.Logf("screenshot: %s", path)
	return path
}

// ArtifactsDir is $TEST_ARTIFACTS, or artifacts/ at the repository root.
func ArtifactsDir() string {
	if d := os.Getenv("TEST_ARTIFACTS"); d != "" {
		return d
	}
	dir, _ := os.Getwd()
	for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "artifacts")
		}
	}
	return filepath.Join(dir, "artifacts")
}

// Text waits for sel and returns its text.
func Text(ctx context.Context, sel string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		return "", fmt.Errorf("waiting for %s: %w", sel, err)
	}
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		return "", fmt.Errorf("text of %s: %w", sel, err)
	}
	return s, nil
}
