// Command temporal runs the embedded Temporal dev server (package devserver) as a process of its own, on a
// SQLite file so that a restart keeps every workflow, with the engine's search attributes registered. It
// is what the chaos run (package chaos) kills and restarts as "the Temporal host"; for local use,
// cmd/allinone runs the same server with everything else.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"saasengine/devserver"
	"saasengine/workflows/subscription"
)

func main() {
	var cfg devserver.Config
	flag.StringVar(&cfg.DataDir, "data", "data", "folder of temporal.db")
	flag.StringVar(&cfg.IP, "ip", "127.0.0.1", "address to listen on")
	flag.IntVar(&cfg.FrontendPort, "port", 7233, "frontend gRPC port (the internal services take the next few)")
	flag.IntVar(&cfg.UIPort, "ui-port", -1, "Web UI port (-1: no UI)")
	flag.Parse()
	cfg.SearchAttributes = subscription.SearchAttributes()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := devserver.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "temporal:", err)
		os.Exit(1)
	}
	// The line the chaos run waits for: the server accepts clients.
	fmt.Println("temporal ready", s.HostPort())
	<-ctx.Done()
	if err := s.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "temporal: stop:", err)
		os.Exit(1)
	}
}
