package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
)

// ErrBadSignature is returned when x-line-signature is missing, not Base64,
// or does not match the body. Callers answer 401 and process nothing.
var ErrBadSignature = errors.New("events: missing or invalid x-line-signature")

// SignatureHeader is the request header LINE signs webhooks with. Go's
// http.Header canonicalises names, so lookups through Header.Get are
// case-insensitive as LINE requires.
const SignatureHeader = "X-Line-Signature"

// Sign returns the Base64 HMAC-SHA256 of body keyed with the channel
// secret: the value LINE puts in x-line-signature. Tools that play LINE's
// side (tests, the emulator, the load generator) use it to sign requests.
func Sign(channelSecret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(channelSecret))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// VerifySignature checks signature against the raw, unmodified body. It
// compares MACs in constant time (hmac.Equal) so the check leaks nothing
// about the expected value.
func VerifySignature(channelSecret, signature string, body []byte) error {
	if signature == "" || channelSecret == "" {
		return ErrBadSignature
	}
	got, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return ErrBadSignature
	}
	mac := hmac.New(sha256.New, []byte(channelSecret))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return ErrBadSignature
	}
	return nil
}
