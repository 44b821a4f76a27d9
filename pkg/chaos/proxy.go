package chaos

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"
)

// Proxy is a plain round-robin reverse proxy in front of the ingest
// replicas, as a load balancer without health checks would be: a request
// routed to a replica that is down gets 502, and LINE's redelivery (the
// load generator's) has to cope.
type Proxy struct {
	URL string
	srv *http.Server
}

// StartProxy listens on a free loopback port and spreads requests over
// backends ("host:port") in turn.
func StartProxy(backends []string) (*Proxy, error) {
	targets := make([]*url.URL, len(backends))
	for i, b := range backends {
		targets[i] = &url.URL{Scheme: "http", Host: b}
	}
	var next atomic.Uint64
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(targets[next.Add(1)%uint64(len(targets))])
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
			MaxIdleConnsPerHost: 128,
			IdleConnTimeout:     30 * time.Second,
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // listener closed under us; nothing to report
		}
	}()
	return &Proxy{URL: "http://" + l.Addr().String(), srv: srv}, nil
}

// Close stops the proxy.
func (p *Proxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.srv.Shutdown(ctx)
}
