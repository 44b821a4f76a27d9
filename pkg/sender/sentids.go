package sender

import "strings"

// sentIDsPlain reads the ids of the answer LINE gives to nearly every
// send, {"sentMessages":[{"id":"…","quoteToken":"…"}]}, without
// encoding/json, whose reflection was 7 % of the sender's CPU. It accepts
// only that shape, with printable ASCII, no escapes and string or digit
// values; for anything else ok is false and sentMessageIDs decodes the
// body in full. What it accepts is valid JSON that the full decode reads
// the same way.
func sentIDsPlain(b []byte) (ids []string, ok bool) {
	p := plainJSON{b: b}
	if !p.byte('{') || p.key() != "sentMessages" || !p.byte('[') {
		return nil, false
	}
	if p.peek() == ']' {
		p.i++
	} else {
		for {
			id, ok := p.message()
			if !ok {
				return nil, false
			}
			ids = append(ids, id)
			if p.byte(',') {
				continue
			}
			if !p.byte(']') {
				return nil, false
			}
			break
		}
	}
	if !p.byte('}') {
		return nil, false
	}
	p.skipSpace()
	return ids, p.i == len(b)
}

// plainJSON steps through the plain subset sentIDsPlain accepts.
type plainJSON struct {
	b []byte
	i int
}

func (p *plainJSON) skipSpace() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *plainJSON) peek() byte {
	p.skipSpace()
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

// byte consumes c (after any space) and reports whether it was there.
func (p *plainJSON) byte(c byte) bool {
	if p.peek() != c {
		return false
	}
	p.i++
	return true
}

// str reads a string of printable ASCII without escapes; "" and false
// for anything else.
func (p *plainJSON) str() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			return string(p.b[start : p.i-1]), true
		case c < 0x20 || c > 0x7e || c == '\\':
			return "", false
		}
		p.i++
	}
	return "", false
}

// key reads a member's key and its colon; "" when there is none.
func (p *plainJSON) key() string {
	k, ok := p.str()
	if !ok || !p.byte(':') {
		return ""
	}
	return k
}

// message reads {"id": …, "quoteToken": …} with string or digit values,
// in any order, and returns the id. A message without exactly one id, or
// with a key the full decode would also take for "id" ("ID", "Id"), is
// not plain.
func (p *plainJSON) message() (string, bool) {
	if !p.byte('{') {
		return "", false
	}
	var id string
	seen := false
	for {
		k := p.key()
		v, ok := p.value()
		if k == "" || !ok {
			return "", false
		}
		if strings.EqualFold(k, "id") {
			if seen || k != "id" {
				return "", false
			}
			id, seen = v, true
		}
		if p.byte(',') {
			continue
		}
		if !p.byte('}') {
			return "", false
		}
		return id, seen
	}
}

// value reads a plain string or a run of digits (no sign, fraction or
// leading zero, so it means what the full decode would read).
func (p *plainJSON) value() (string, bool) {
	if p.peek() == '"' {
		return p.str()
	}
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	n := p.i - start
	if n == 0 || (n > 1 && p.b[start] == '0') {
		return "", false
	}
	return string(p.b[start:p.i]), true
}
