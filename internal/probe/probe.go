// Package probe is the container health check of the engine's binaries: `<binary> probe <url>` exits 0
// when the URL answers 2xx. Distroless images have no curl, so each binary carries its own.
package probe

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

// FromArgs runs the probe and exits if args ask for one ("probe <url>"); otherwise it returns.
func FromArgs(args []string) {
	if len(args) < 2 || args[1] != "probe" {
		return
	}
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: probe <url>")
		os.Exit(2)
	}
	if err := Check(args[2]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Check GETs url and reports whether it answered 2xx within five seconds.
func Check(url string) error {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return fmt.Errorf("probe %s: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("probe %s: %s", url, resp.Status)
	}
	return nil
}
