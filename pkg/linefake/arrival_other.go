//go:build !(linux && (amd64 || arm64))

package linefake

import "net"

// ArrivalListener returns l: only Linux reports receive times here, and
// requests are timed when their handler runs.
func ArrivalListener(l net.Listener) net.Listener { return l }
