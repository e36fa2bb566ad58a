// Command chaos drives subscriptions through their whole lifecycle against the emulator with faults,
// read lag and webhook chaos while it kills the worker, the webhook server and the Temporal host, then
// reports what was lost, doubled, stuck or falsely reported (package chaos). It exits 1 if any count is
// not 0. See RELIABILITY.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"saasengine/chaos"
)

func main() {
	cfg := chaos.Defaults()
	flag.IntVar(&cfg.N, "n", cfg.N, "subscriptions to drive")
	flag.IntVar(&cfg.Kills, "kills", cfg.Kills, "kills of each process kind (worker, webhook server, Temporal host)")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the fault draws")
	flag.Float64Var(&cfg.FailRate, "fail-rate", cfg.FailRate, "fraction of Marketplace calls failing with 500/503/429")
	flag.Float64Var(&cfg.LostRate, "lost-rate", cfg.LostRate, "fraction of Activate/PATCH/DELETE answers lost after the write")
	flag.Float64Var(&cfg.DropRate, "drop-rate", cfg.DropRate, "fraction of webhooks dropped")
	flag.Float64Var(&cfg.DuplicateRate, "duplicate-rate", cfg.DuplicateRate, "fraction of webhooks sent twice")
	flag.Float64Var(&cfg.ReorderRate, "reorder-rate", cfg.ReorderRate, "fraction of webhooks held back until overtaken")
	flag.DurationVar(&cfg.ReadLag, "read-lag", cfg.ReadLag, "how long Microsoft's reads lag its operations")
	flag.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "subscriptions driven at once")
	flag.DurationVar(&cfg.Settle, "settle", cfg.Settle, "how long to wait after reconciliation for every subscription to agree")
	flag.DurationVar(&cfg.StepTimeout, "step-timeout", cfg.StepTimeout, "how long the driver waits for the engine to show one step")
	flag.StringVar(&cfg.Dir, "dir", "", "the run's folder (state, logs, binaries); default a new temporary folder, kept")
	flag.StringVar(&cfg.BinDir, "bin", "", "folder with the binaries already built (temporal, emulator, worker, webhook); default builds them into the run folder")
	jsonOut := flag.String("json", "", "also write the report as JSON to this file")
	flag.Parse()

	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "saasengine-chaos-")
		if err != nil {
			fail(err)
		}
		cfg.Dir = dir
	}
	cfg.Dir, _ = filepath.Abs(cfg.Dir)
	cfg.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintln(os.Stderr, "chaos run folder:", cfg.Dir)
	rep, err := chaos.Run(ctx, cfg)
	if err != nil {
		fail(err)
	}
	rep.Write(os.Stdout)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fail(err)
		}
	}
	if !rep.OK() {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "chaos:", err)
	os.Exit(2)
}
