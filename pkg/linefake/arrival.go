package linefake

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// LINE's rate limits act where requests reach LINE. An emulator that
// shares a busy host with the client takes a request's time when its
// handler runs, and a stall of the emulator's own process then bunches
// requests that arrived evenly: a client that kept to the limit on the
// wire would be counted over it. On Linux, ArrivalListener asks the
// kernel for the time each connection's bytes were received, and the
// rate limiter and its one-second counts use that instant for a request
// (the receive time of the last bytes read before its handler ran; a
// Go client sends one request at a time on a connection, so those are
// the request's). Elsewhere, or with an injected Clock, the handler's
// clock reading stands.

// arrivalKey carries a request's connection stamp in its context.
type arrivalKey struct{}

// stamp is the kernel receive time of the last bytes read from a
// connection, in Unix nanoseconds; 0 until known.
type stamp struct{ ns atomic.Int64 }

// ConnContext is an http.Server ConnContext that lets the handlers of a
// connection accepted by ArrivalListener read its arrival stamps.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if sc, ok := c.(interface{ arrival() *stamp }); ok {
		return context.WithValue(ctx, arrivalKey{}, sc.arrival())
	}
	return ctx
}

// arrivedAt is when r's bytes reached this host, if the kernel said.
func arrivedAt(r *http.Request) (time.Time, bool) {
	st, _ := r.Context().Value(arrivalKey{}).(*stamp)
	if st == nil {
		return time.Time{}, false
	}
	ns := st.ns.Load()
	if ns == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}
