package bench

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/linepipe/linepipe/pkg/linefake"
)

// Emulator is the LINE Platform emulator served in-process on a loopback
// port, so a run can read its ledger and counters directly.
type Emulator struct {
	*linefake.Server
	URL string
	srv *http.Server
}

// StartEmulator serves a linefake.Server for cfg on a free loopback port.
func StartEmulator(cfg linefake.Config) (*Emulator, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := linefake.New(cfg)
	// Rate limits and their one-second counts time a request by when it
	// reached this host, not by when the emulator, which shares the host's
	// cores with everything it measures, got round to handling it.
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second, ConnContext: linefake.ConnContext}
	go func() {
		if err := srv.Serve(linefake.ArrivalListener(l)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener was closed under us; Close reports nothing more useful
		}
	}()
	return &Emulator{Server: s, URL: "http://" + l.Addr().String(), srv: srv}, nil
}

// Close stops the emulator.
func (e *Emulator) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return e.srv.Shutdown(ctx)
}

// UnlimitedRates lifts every per-channel rate limit of the emulator.
func UnlimitedRates() linefake.RateLimits {
	u := linefake.Unlimited
	return linefake.RateLimits{Push: u, Reply: u, Multicast: u, Narrowcast: u, Broadcast: u, Other: u}
}
