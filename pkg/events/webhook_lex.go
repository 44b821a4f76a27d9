package events

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// scanner steps through JSON that validJSON accepted, for ParseWebhook's
// walk (webhook_scan.go). It never checks syntax, but it stays inside the
// buffer whatever the bytes: at the end, peek is 0 and every step stops.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) space() { s.i = spaceEnd(s.b, s.i) }

// key reads the next member's key of the object being walked and the
// colon after it, leaving s.i at the value. ok is false at the object's
// closing brace, which it consumes.
func (s *scanner) key() (tok []byte, plain, ok bool) {
	s.space()
	if s.peek() == ',' {
		s.i++
		s.space()
	}
	if s.peek() != '"' {
		s.i++ // }
		return nil, false, false
	}
	tok, plain = s.str()
	s.space()
	s.i++ // :
	s.space()
	return tok, plain, true
}

// str reads the string at s.i and returns it quoted. plain reports that
// it holds only ASCII and no escape, so its bytes between the quotes are
// its value.
func (s *scanner) str() (tok []byte, plain bool) {
	start := s.i
	plain = true
	for s.i++; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start:s.i], plain
		case c == '\\':
			plain = false
			s.i++
		case c >= utf8.RuneSelf:
			plain = false
		}
	}
	return s.b[start:], false
}

// stringValue reads the string at s.i. An escaped or non-ASCII string is
// unquoted by encoding/json, which also replaces invalid UTF-8 as a
// decode would.
func (s *scanner) stringValue() string {
	tok, plain := s.str()
	if plain {
		return string(tok[1 : len(tok)-1])
	}
	var v string
	_ = json.Unmarshal(tok, &v) // a valid string token always unquotes
	return v
}

// skip steps over the value at s.i.
func (s *scanner) skip() {
	switch s.peek() {
	case '"':
		s.skipString()
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				s.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return
				}
			}
			s.i++
		}
	default: // number, true, false, null
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return
			}
			s.i++
		}
	}
}

// skipString steps over the string at s.i, jumping from quote to quote:
// event text is most of a webhook's bytes.
func (s *scanner) skipString() {
	i := s.i + 1
	for {
		j := bytes.IndexByte(s.b[i:], '"')
		if j < 0 {
			s.i = len(s.b)
			return
		}
		i += j
		k := i - 1
		for k > s.i && s.b[k] == '\\' {
			k--
		}
		i++
		if (i-2-k)%2 == 0 { // an even run of backslashes: the closing quote
			s.i = i
			return
		}
	}
}
