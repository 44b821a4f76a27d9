package events

// validJSON reports what json.Valid reports, at a fraction of its cost.
// Every webhook ingest splits and every event and webhook-log record the
// worker decodes is checked first, because the hand walks (webhook_scan.go,
// event_scan.go) step through bytes without checking their syntax; in a
// drain json.Valid was a fifth of the worker's CPU. encoding/json's
// scanner calls a state function per byte; this is a plain recursive
// descent whose string loop, where a webhook's bytes are, tests each byte
// against one table.
//
// It accepts exactly json.Valid's language (FuzzValidJSON compares the
// two on any bytes): one value between optional JSON whitespace; strings
// with no byte below 0x20 and only JSON's escapes, other bytes taken as
// they are (json.Valid does not check UTF-8 either); numbers in JSON's
// grammar; and at most maxDepth nested arrays and objects, encoding/json's
// own limit.
func validJSON(b []byte) bool {
	v := validator{b: b}
	v.space()
	if !v.value(0) {
		return false
	}
	v.space()
	return v.i == len(b)
}

// maxDepth is encoding/json's limit on nesting (its maxNestingDepth):
// json.Valid refuses a value nested deeper.
const maxDepth = 10000

// plainByte marks the bytes a string's loop steps over without a second
// look: anything but the closing quote, a backslash or a control byte.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

type validator struct {
	b []byte
	i int
}

func (v *validator) space() { v.i = spaceEnd(v.b, v.i) }

// spaceEnd is the index of the first byte at or after i that is not JSON
// whitespace (the validator's and the walks' scanner's).
func spaceEnd(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// value checks the value at v.i, nested in depth arrays and objects.
func (v *validator) value(depth int) bool {
	if v.i >= len(v.b) {
		return false
	}
	switch c := v.b[v.i]; {
	case c == '"':
		return v.str()
	case c == '{':
		return depth < maxDepth && v.object(depth+1)
	case c == '[':
		return depth < maxDepth && v.array(depth+1)
	case c == '-' || c >= '0' && c <= '9':
		return v.number()
	case c == 't':
		return v.literal("true")
	case c == 'f':
		return v.literal("false")
	case c == 'n':
		return v.literal("null")
	}
	return false
}

// object checks the object whose opening brace is at v.i.
func (v *validator) object(depth int) bool {
	return v.members('}', func() bool {
		if v.i >= len(v.b) || v.b[v.i] != '"' || !v.str() {
			return false
		}
		v.space()
		if v.i >= len(v.b) || v.b[v.i] != ':' {
			return false
		}
		v.i++
		v.space()
		return v.value(depth)
	})
}

// array checks the array whose opening bracket is at v.i.
func (v *validator) array(depth int) bool {
	return v.members(']', func() bool { return v.value(depth) })
}

// members steps over the opening byte at v.i, then checks members, each
// read by member, separated by commas, up to closer.
func (v *validator) members(closer byte, member func() bool) bool {
	v.i++
	v.space()
	if v.i < len(v.b) && v.b[v.i] == closer {
		v.i++
		return true
	}
	for {
		if !member() {
			return false
		}
		v.space()
		if v.i >= len(v.b) {
			return false
		}
		switch v.b[v.i] {
		case ',':
			v.i++
			v.space()
		case closer:
			v.i++
			return true
		default:
			return false
		}
	}
}

// str checks the string at v.i and steps past its closing quote.
func (v *validator) str() bool {
	b := v.b
	i := v.i + 1
	for {
		for i < len(b) && plainByte[b[i]] {
			i++
		}
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case '"':
			v.i = i + 1
			return true
		case '\\':
			if i+1 >= len(b) {
				return false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return false
				}
				i += 6
			default:
				return false
			}
		default: // a control byte
			return false
		}
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// number checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at v.i.
func (v *validator) number() bool {
	b := v.b
	i := v.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return false
		}
		i = j
	}
	v.i = i
	return true
}

// digits is the index after the run of digits starting at i.
func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func (v *validator) literal(word string) bool {
	if len(v.b)-v.i < len(word) || string(v.b[v.i:v.i+len(word)]) != word {
		return false
	}
	v.i += len(word)
	return true
}
