package emulator

import (
	"net"
	"runtime"
	"testing"
	"time"
)

// A response the publisher has sent counts as answered as soon as it reaches the emulator's socket,
// before any goroutine of the emulator has read it.
func TestAResponseInTheSocketCountsAsAnswered(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("unread bytes are only counted on Linux")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := &watchedConn{Conn: raw}
	defer c.Close()
	server := <-accepted
	defer server.Close()

	if responded, known := c.responded(); !known || responded {
		t.Fatalf("before the response: responded %v, known %v", responded, known)
	}
	if _, err := server.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// Loopback delivers the write to this side's socket almost at once: wait for it, never reading.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if responded, _ := c.responded(); responded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a response written and unread is not counted")
		}
	}
	if c.read.Load() {
		t.Fatal("the check read from the connection")
	}
	buf := make([]byte, 64)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	if responded, _ := c.responded(); !responded {
		t.Fatal("response read: not counted")
	}
}
