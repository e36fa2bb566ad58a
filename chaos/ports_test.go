package chaos

import (
	"net"
	"strconv"
	"testing"
)

// Ports the run gives its processes lie below the ephemeral range, so a restarted process finds its
// port still free, and are free when handed out.
func TestFreePortsAvoidTheEphemeralRange(t *testing.T) {
	hi := ephemeralStart()
	for range 20 {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		if p >= hi || p < 1024 {
			t.Fatalf("port %d, want one in [1024, %d)", p, hi)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d handed out but not free: %v", p, err)
		}
		l.Close()
	}
	base, err := freePortBlock(12)
	if err != nil {
		t.Fatal(err)
	}
	if base+12 >= hi {
		t.Fatalf("block %d-%d reaches the ephemeral range at %d", base, base+12, hi)
	}
}
