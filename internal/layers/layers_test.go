// Package layers keeps the imports pointing one way: binaries → the HTTP server and the CLI → each
// workflow's contract and client → the workflows → their activities → marketplace/ and provisioning/,
// with the embedded Temporal server linked only where a whole stack runs in one process.
package layers

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// rule forbids packages matching from to import packages matching to ("x/..." matches x and below).
type rule struct{ from, to, why string }

var rules = []rule{
	{"saasengine/webhook/server", "saasengine/config", "the HTTP handlers take their Config; webhook/frontend reads the environment's"},
	{"saasengine/webhook/server", "saasengine/engine", "the HTTP side talks to workflows through their clients, not the worker's wiring"},
	{"saasengine/webhook", "saasengine/engine", "the webhook binary does not link the worker"},
	{"saasengine/webhook/...", "saasengine/devserver", "the HTTP side runs against any Temporal cluster"},
	{"saasengine/worker", "saasengine/webhook/...", "the worker binary does not link the HTTP server"},
	{"saasengine/worker", "saasengine/devserver", "the worker runs against any Temporal cluster"},
	{"saasengine/starter", "saasengine/devserver", "the CLI runs against any Temporal cluster"},
	{"saasengine/starter", "saasengine/engine", "the CLI talks to workflows through their clients"},
	{"saasengine/engine", "saasengine/webhook/...", "the worker's wiring does not link the HTTP server"},
	{"saasengine/config", "saasengine/webhook/...", "every binary reads config; it must not pull in the HTTP server"},
	{"saasengine/workflows/...", "saasengine/config", "workflows take options, not the environment"},
	{"saasengine/workflows/...", "saasengine/engine", "the wiring sits above the workflows"},
	{"saasengine/workflows/...", "saasengine/webhook/...", "workflows sit below the HTTP side"},
	{"saasengine/activities/...", "saasengine/workflows/...", "activities sit below the workflows"},
	{"saasengine/activities/...", "saasengine/config", "activities take their dependencies, not the environment"},
	{"saasengine/marketplace", "saasengine/...", "the Marketplace client stands on its own"},
	{"saasengine/provisioning", "saasengine/activities/...", "provisioning sits below the activities"},
	{"saasengine/provisioning", "saasengine/workflows/...", "provisioning sits below the workflows"},
}

func matches(pattern, pkg string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

// violations lists every import (test files excluded) that a rule forbids.
func violations(imports map[string][]string) []string {
	var out []string
	for pkg, deps := range imports { // sorted below
		for _, dep := range deps {
			for _, r := range rules {
				if dep != pkg && matches(r.from, pkg) && matches(r.to, dep) {
					out = append(out, pkg+" imports "+dep+": "+r.why)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestImportsPointOneWay(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "saasengine/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) > 0 {
			imports[f[0]] = f[1:]
		}
	}
	if len(imports) < 20 || imports["saasengine/webhook/server"] == nil {
		t.Fatalf("go list found %d packages, not the repository's", len(imports))
	}
	for _, v := range violations(imports) {
		t.Error(v)
	}
}

// The rules find what they are for: an HTTP handler reading the environment, a worker linking the HTTP
// server, and a workflow reaching up into the wiring.
func TestRulesCanFail(t *testing.T) {
	got := violations(map[string][]string{
		"saasengine/webhook/server":         {"saasengine/config", "saasengine/entra"},
		"saasengine/worker":                 {"saasengine/webhook/frontend"},
		"saasengine/workflows/subscription": {"saasengine/engine", "saasengine/activities/subscription"},
		"saasengine/marketplace":            {"net/http"},
	})
	if len(got) != 3 {
		t.Fatalf("violations %q, want the three forbidden imports", got)
	}
}
