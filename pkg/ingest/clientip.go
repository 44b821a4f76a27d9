package ingest

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// DefaultTrustedProxies are the networks a reverse proxy in front of
// ingest normally sits in: loopback and the private ranges (RFC 1918,
// RFC 4193). They apply when INGEST_TRUST_PROXY is on and
// INGEST_TRUSTED_PROXIES is not set.
var DefaultTrustedProxies = mustPrefixes("127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7")

// ParseTrustedProxies reads a comma-separated list of CIDRs (a bare
// address means that one host).
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", f, err)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", f, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func mustPrefixes(s string) []netip.Prefix {
	p, err := ParseTrustedProxies(s)
	if err != nil {
		panic(err)
	}
	return p
}

func trusted(a netip.Addr, nets []netip.Prefix) bool {
	a = a.Unmap()
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP is the address that sent the request. Without proxy trust it is
// the TCP peer. With it, X-Forwarded-For is read from the right: each
// trusted proxy appends the address it received from, so the rightmost
// hop that is not a trusted proxy is the client. Everything left of it
// was written by the client and proves nothing; taking the leftmost entry
// would let any client choose the IP that webhook_log records. A peer
// that is not itself a trusted proxy cannot speak for anyone, so its
// header is ignored.
func clientIP(r *http.Request, trustProxy bool, nets []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !trustProxy {
		return host
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !trusted(peer, nets) {
		return host
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hops = append(hops, h)
			}
		}
	}
	client := host
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			// Not an address (garbage, or "unknown"): no proxy we trust
			// wrote it, so nothing left of it can be believed either.
			return client
		}
		client = a.Unmap().String()
		if !trusted(a, nets) {
			return client
		}
	}
	return client
}
