// Command benchworker is the worker process of the memory benchmark (bench.BenchmarkWorkerMemory): the
// engine's worker configured from the environment as cmd/worker is, or a bare SDK worker, with its heap,
// resident set and cached workflows served on a loopback port. It links what cmd/worker links, not the
// test binary's embedded Temporal server, so its resident set is a worker's.
package main

import (
	"fmt"
	"os"

	"saasengine/bench"
)

func main() {
	if err := bench.RunWorker(os.Getenv(bench.EnvWorkerRole)); err != nil {
		fmt.Fprintln(os.Stderr, "benchworker:", err)
		os.Exit(1)
	}
}
