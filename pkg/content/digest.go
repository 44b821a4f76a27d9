package content

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// decodeDigest turns the object store's "SHA-256=<base64url>" into hex.
func decodeDigest(d string) (string, bool) {
	v, ok := strings.CutPrefix(d, "SHA-256=")
	if !ok {
		return "", false
	}
	b, err := base64.URLEncoding.DecodeString(v)
	if err != nil {
		if b, err = base64.RawURLEncoding.DecodeString(v); err != nil {
			return "", false
		}
	}
	return hex.EncodeToString(b), true
}
