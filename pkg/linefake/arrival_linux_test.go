//go:build linux && (amd64 || arm64)

package linefake

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A connection accepted by ArrivalListener times its bytes by when they
// reached the kernel, not by when they were read: bytes sent, then read
// 300 ms later, carry the instant they were sent.
func TestArrivalListenerStampsReceiveTime(t *testing.T) {
	t.Parallel()
	client, server := stampedPair(t)
	sent, at, read := firstStamp(t, client, server, 300*time.Millisecond)
	if at.Before(sent.Add(-time.Millisecond)) || read.Sub(at) < 250*time.Millisecond {
		t.Fatalf("stamped %s after the write and %s before the read; want the write's instant", at.Sub(sent), read.Sub(at))
	}
	client.Close()
	buf := make([]byte, 16)
	if n, err := server.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("after the client closed: %d bytes, %v; want io.EOF", n, err)
	}
}

// stampedPair is a loopback connection whose server side ArrivalListener
// accepted; both are closed when the test ends.
func stampedPair(t *testing.T) (net.Conn, *stampedConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	al := ArrivalListener(l)
	t.Cleanup(func() { al.Close() })
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := al.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	sc, ok := server.(*stampedConn)
	if !ok {
		t.Fatalf("accepted %T, want a stamped connection", server)
	}
	return client, sc
}

// firstStamp writes to client and reads on server wait later until a read
// carries the kernel's receive time: the kernel starts stamping a moment
// after the first socket asks, and until then a read carries none.
func firstStamp(t *testing.T, client net.Conn, server *stampedConn, wait time.Duration) (sent, at, read time.Time) {
	t.Helper()
	buf := make([]byte, 16)
	for try := 0; try < 20; try++ {
		sent = time.Now()
		if _, err := client.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(wait)
		n, err := server.Read(buf)
		read = time.Now()
		if err != nil || string(buf[:n]) != "hello" {
			t.Fatalf("read %q, %v", buf[:n], err)
		}
		if ns := server.st.ns.Load(); ns != 0 {
			return sent, time.Unix(0, ns), read
		}
	}
	t.Fatal("no read carried the kernel's receive time")
	return
}

// Behind ArrivalListener the emulator's rate limit counts a request when
// it reached the host: requests that arrived 1.1 s apart are within a
// limit of one a second even when a stall hands them to their handlers
// 50 ms apart.
func TestRateLimitCountsArrival(t *testing.T) {
	t.Parallel()
	// A stamped connection held open keeps the kernel stamping.
	client, server := stampedPair(t)
	firstStamp(t, client, server, 10*time.Millisecond)
	s := New(Config{Channels: []Channel{{ID: testChannel, Secret: testSecret, AccessTokens: []string{testToken}}},
		RateLimits: RateLimits{Push: Limit{Requests: 1, Per: time.Second}}})
	gates := []chan struct{}{make(chan struct{}), make(chan struct{})}
	stall := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(r.Header.Get("X-Test-Seq"))
		<-gates[i] // the emulator's process, stalled
		s.ServeHTTP(w, r)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: stall, ConnContext: ConnContext}
	go srv.Serve(ArrivalListener(l))
	defer srv.Close()
	statuses := make([]chan int, 2)
	for i := range 2 {
		if i == 1 {
			time.Sleep(1100 * time.Millisecond)
		}
		statuses[i] = make(chan int, 1)
		go func() {
			req, _ := http.NewRequest(http.MethodPost, "http://"+l.Addr().String()+PathPush,
				strings.NewReader(`{"to":"U`+strings.Repeat("0", 32)+`","messages":[{"type":"text","text":"hi"}]}`))
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Test-Seq", strconv.Itoa(i))
			res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
			if err != nil {
				statuses[i] <- 0
				return
			}
			res.Body.Close()
			statuses[i] <- res.StatusCode
		}()
	}
	time.Sleep(100 * time.Millisecond)
	for i := range 2 {
		close(gates[i])
		if st := <-statuses[i]; st != http.StatusOK {
			t.Fatalf("request %d: status %d; requests that arrived 1.1 s apart were limited as if they came together", i, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, w := range s.Stats().RateWindows {
		if w.Endpoint == "push" && w.MaxAttempts != 1 {
			t.Fatalf("busiest second %d, want 1: the two requests arrived 1.1 s apart", w.MaxAttempts)
		}
	}
}
