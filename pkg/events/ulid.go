package events

import (
	"encoding/binary"
	"time"
)

// crockford is the ULID alphabet: Crockford's base32, without I, L, O, U.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// ULID formats an id the way LINE mints webhookEventId: 48 bits of Unix
// milliseconds then 80 bits of entropy, as 26 Crockford base32
// characters, so ids sort by time. The emulator, the load generator and
// test fixtures all mint ids with it.
func ULID(ms uint64, entropy [10]byte) string {
	var b [16]byte
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	copy(b[6:], entropy[:])
	hi := binary.BigEndian.Uint64(b[0:8])
	lo := binary.BigEndian.Uint64(b[8:16])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// ULIDTime decodes the millisecond time of a ULID, reporting false for a
// string that is not one.
func ULIDTime(id string) (time.Time, bool) {
	if len(id) != 26 || id[0] > '7' {
		return time.Time{}, false
	}
	var ms uint64
	for i := 0; i < 26; i++ {
		v := -1
		for j := 0; j < len(crockford); j++ {
			if crockford[j] == id[i] {
				v = j
				break
			}
		}
		if v < 0 {
			return time.Time{}, false
		}
		if i < 10 {
			ms = ms<<5 | uint64(v)
		}
	}
	return time.UnixMilli(int64(ms)).UTC(), true
}
