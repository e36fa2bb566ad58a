// Command allinone runs the whole engine in one process: embedded Temporal with its Web UI, the
// Marketplace emulator, the worker and the webhook/landing/admin server (see package allinone). Ctrl-C
// stops it; running it again keeps every workflow and subscription.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"saasengine/allinone"
)

func main() {
	var o allinone.Options
	flag.StringVar(&o.DataDir, "data", "data", "folder for Temporal's SQLite file, the emulator's state and the demo tenants")
	flag.IntVar(&o.TemporalPort, "temporal-port", 7233, "embedded Temporal's gRPC port")
	flag.IntVar(&o.UIPort, "ui-port", 8233, "Temporal Web UI port (-1: no UI)")
	flag.StringVar(&o.EmulatorAddr, "emulator-addr", "127.0.0.1:3978", "the emulator's listen address")
	flag.StringVar(&o.HTTPAddr, "http-addr", "127.0.0.1:8080", "webhook, landing page and admin API listen address")
	flag.StringVar(&o.SMTPAddr, "smtp-addr", "127.0.0.1:2525", "the development mail server's listen address, for notification e-mails (off: none)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := allinone.Start(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "allinone:", err)
		os.Exit(1)
	}
	fmt.Println(s.Banner())
	<-ctx.Done()
	fmt.Println("stopping...")
	s.Close()
}
