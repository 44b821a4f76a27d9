package loadgen

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
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

// crockford is the ULID alphabet: Crockford's base32, no I, L, O or U.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

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
	var b [16]byte
	binary.BigEndian.PutUint16(b[:2], uint16(g.lastMS>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(g.lastMS))
	copy(b[6:], g.last[:])
	return encodeULID(b)
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

// encodeULID writes 128 bits as 26 base32 characters, most significant
// first; the first character carries the top 3 bits.
func encodeULID(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// ULIDTime decodes the millisecond timestamp of a ULID, reporting false
// for a string that is not a ULID. Audits use it to order event IDs.
func ULIDTime(id string) (time.Time, bool) {
	if len(id) != 26 || id[0] > '7' {
		return time.Time{}, false
	}
	var ms uint64
	for i := 0; i < 26; i++ {
		v := indexCrockford(id[i])
		if v < 0 {
			return time.Time{}, false
		}
		if i < 10 {
			ms = ms<<5 | uint64(v)
		}
	}
	return time.UnixMilli(int64(ms)).UTC(), true
}

func indexCrockford(c byte) int {
	for i := 0; i < len(crockford); i++ {
		if crockford[i] == c {
			return i
		}
	}
	return -1
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
