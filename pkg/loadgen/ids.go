package loadgen

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/linepipe/linepipe/pkg/events"
)

// lockedRand is a seeded generator safe for concurrent use. Every random
// choice in a run comes from one seed, so a run can be reproduced.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func newLockedRand(seed, stream uint64) *lockedRand {
	return &lockedRand{r: rand.New(rand.NewPCG(seed, stream))}
}

func (l *lockedRand) Uint64() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Uint64()
}

func (l *lockedRand) IntN(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.IntN(n)
}

func (l *lockedRand) Float64() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}

// hexID is n random bytes as lowercase hex: the body of LINE user, group
// and reply-token-like identifiers.
func (l *lockedRand) hexID(n int) string {
	b := make([]byte, n)
	l.mu.Lock()
	for i := 0; i < n; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], l.r.Uint64())
		copy(b[i:], w[:])
	}
	l.mu.Unlock()
	return hex.EncodeToString(b)
}

// ulidGen mints webhookEventIds as LINE does: ULIDs, 48 bits of Unix
// milliseconds then 80 random bits, 26 Crockford base32 characters.
// Within one millisecond it increments the random part, so IDs are
// strictly increasing in the order they are minted, even under load.
type ulidGen struct {
	mu     sync.Mutex
	now    func() time.Time
	rnd    *lockedRand
	lastMS uint64
	last   [10]byte
}

func newULIDGen(now func() time.Time, rnd *lockedRand) *ulidGen {
	return &ulidGen{now: now, rnd: rnd}
}

// New returns the next ULID.
func (g *ulidGen) New() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := uint64(g.now().UnixMilli())
	if ms > g.lastMS {
		g.lastMS = ms
		binary.BigEndian.PutUint16(g.last[:2], uint16(g.rnd.Uint64()))
		binary.BigEndian.PutUint64(g.last[2:], g.rnd.Uint64())
	} else if !increment(g.last[:]) {
		// The 80-bit part overflowed: borrow the next millisecond, which
		// keeps the order and the uniqueness.
		g.lastMS++
	}
	return events.ULID(g.lastMS, g.last)
}

// increment adds one to a big-endian number, reporting false on overflow.
func increment(b []byte) bool {
	for i := len(b) - 1; i >= 0; i-- {
		b[i]++
		if b[i] != 0 {
			return true
		}
	}
	return false
}

// messageIDs mints message IDs: unique decimal strings like LINE's. Each
// run starts from a random 18-19 digit base, so the IDs of runs against
// the same database do not collide.
type messageIDs struct {
	mu   sync.Mutex
	next uint64
}

func newMessageIDs(rnd *lockedRand) *messageIDs {
	const lo, span = 100_000_000_000_000_000, 8_000_000_000_000_000_000
	return &messageIDs{next: lo + rnd.Uint64()%span}
}

func (m *messageIDs) New() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	return strconv.FormatUint(m.next, 10)
}
