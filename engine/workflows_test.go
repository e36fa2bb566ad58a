package engine_test

import (
	"reflect"
	"runtime"
	"strings"
	"testing"

	"saasengine/engine"
)

// sdkName is the name the Temporal SDK gives a workflow function it is handed by value: its short name,
// without the package.
func sdkName(fn any) string {
	full := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
	return strings.TrimSuffix(full[strings.LastIndex(full, ".")+1:], "-fm")
}

// sharedNames returns the short names that more than one of fns has.
func sharedNames(fns []any) []string {
	seen := map[string]int{}
	var shared []string
	for _, fn := range fns {
		n := sdkName(fn)
		if seen[n]++; seen[n] == 2 {
			shared = append(shared, n)
		}
	}
	return shared
}

// Two workflow functions with the same short name make the SDK resolve one to the other's type: a
// reconciliation once continued as new as a metering workflow that way.
func TestWorkflowFunctionsHaveDistinctNames(t *testing.T) {
	var fns []any
	for _, wf := range engine.Workflows {
		fns = append(fns, wf.Func)
	}
	if shared := sharedNames(fns); len(shared) > 0 {
		t.Fatalf("workflow functions share the names %v", shared)
	}
	// The check itself: a function of this package named like the reconciliation workflow collides.
	if shared := sharedNames(append(fns, ReconciliationWorkflow)); len(shared) != 1 || shared[0] != "ReconciliationWorkflow" {
		t.Fatalf("a colliding name was not found: %v", shared)
	}
}

// ReconciliationWorkflow only lends its name to the check above.
func ReconciliationWorkflow() {}
