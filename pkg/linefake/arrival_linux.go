//go:build linux && (amd64 || arm64)

package linefake

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"syscall"
	"time"
)

// ArrivalListener wraps l so that every TCP connection it accepts reports
// when its bytes reached the kernel (SO_TIMESTAMPNS). A connection whose
// socket refuses the option is served unstamped.
func ArrivalListener(l net.Listener) net.Listener { return arrivalListener{l} }

type arrivalListener struct{ net.Listener }

func (l arrivalListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c, nil
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return c, nil
	}
	return &stampedConn{TCPConn: tc, raw: raw, st: &stamp{}}, nil
}

// stampedConn reads with recvmsg(2) to collect each read's receive
// timestamp; everything else is the TCP connection's.
type stampedConn struct {
	*net.TCPConn
	raw syscall.RawConn
	st  *stamp
	oob [64]byte
}

func (c *stampedConn) arrival() *stamp { return c.st }

func (c *stampedConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n, oobn int
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = syscall.Recvmsg(int(fd), p, c.oob[:], 0)
		return !errors.Is(rerr, syscall.EAGAIN)
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	if n == 0 {
		return 0, io.EOF
	}
	// Without a stamp (the kernel starts stamping a moment after the
	// first socket asks), the bytes' time is unknown: no stale stamp of
	// earlier bytes stands for them.
	var ns int64
	if at, ok := receivedAt(c.oob[:oobn]); ok {
		ns = at.UnixNano()
	}
	c.st.ns.Store(ns)
	return n, nil
}

// receivedAt finds SCM_TIMESTAMPNS in a recvmsg's control data.
func receivedAt(oob []byte) (time.Time, bool) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			// struct timespec on a 64-bit Linux: two native int64s.
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return time.Unix(sec, nsec), true
		}
	}
	return time.Time{}, false
}
