package allinone

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// A metrics port already in use fails the start at once, naming the setting to change.
func TestTakenMetricsPortNamesTheSetting(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	env := map[string]string{"METRICS_ADDR": taken.Addr().String()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx, Options{DataDir: t.TempDir(), TemporalPort: port(freeAddr(t)), UIPort: -1,
		EmulatorAddr: freeAddr(t), HTTPAddr: freeAddr(t), Getenv: func(k string) string { return env[k] }})
	if err == nil {
		s.Close()
		t.Fatal("started on a taken metrics port")
	}
	if !strings.Contains(err.Error(), "METRICS_ADDR="+taken.Addr().String()) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("error %q does not name METRICS_ADDR and the cause", err)
	}
}
