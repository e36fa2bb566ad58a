//go:build !linux

package emulator

import "net"

// unreadBytes cannot be told here.
func unreadBytes(net.Conn) (int, bool) { return 0, false }
