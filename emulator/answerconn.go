package emulator

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// A PATCH that arrives while its webhook's post awaits the response is a breach only if the response
// had not been sent. The emulator's own goroutines may notice a response late on a loaded machine, so
// the post's connection is asked instead: a response sent before the PATCH has been read from it, or
// waits unread in its socket.

// watchedConn is a webhook post's connection; it notes when any byte of the response has been read.
type watchedConn struct {
	net.Conn
	read atomic.Bool
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.read.Store(true)
	}
	return n, err
}

// responded reports whether the response has reached the emulator; known is false where that cannot be
// told (another operating system).
func (c *watchedConn) responded() (responded, known bool) {
	if c.read.Load() {
		return true, true
	}
	n, ok := unreadBytes(c.Conn)
	return n > 0, ok
}

type connKey struct{}

// webhookClient posts webhooks on a connection of their own each (no keep-alive: the bytes on a
// connection are then its post's), watched.
func webhookClient(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: timeout}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		Proxy:             http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			w := &watchedConn{Conn: c}
			if slot, ok := ctx.Value(connKey{}).(*atomic.Pointer[watchedConn]); ok {
				slot.Store(w)
			}
			return w, nil
		},
	}}
}
