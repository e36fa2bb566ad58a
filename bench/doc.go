// Package bench holds the engine's benchmarks that need a Temporal-only baseline: each runs the engine's
// figure and the same work done with Temporal alone, interleaved in one process (one Temporal server, one
// emulator), and reports both and their ratio with b.ReportMetric.
//
//   - BenchmarkWorkerMemory: heap, RSS and goroutines of a worker process per cached idle subscription
//     workflow, against a bare SDK workflow with the same cache size.
//   - BenchmarkActivation: activations per second against a bare workflow calling the same activities.
//   - BenchmarkReconcile: a reconciliation run against a plain walk of the same List pages making the same
//     reads.
//   - BenchmarkAdoption: adopting n and 2n subscriptions (linearity), against bare workflows that provision.
//   - BenchmarkDecisions: customers' seat changes decided through the webhook at stepped rates (answer
//     latency, refusals answered 4xx inside the wait, PATCH within 10 s), against a raw Update-With-Start
//     of a bare workflow making the same calls.
//
// Sizes are modest by default so that `go test -bench . ./bench` finishes in minutes on two cores; the
// BENCH_* environment variables (see each benchmark) raise them. Benchmarks run only with -bench; the
// package's one test is quick.
package bench
