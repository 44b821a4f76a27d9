// Package secretbox encrypts credentials at rest: channel secrets and
// access tokens in the channels table. A database dump, a backup or a
// read-only replica then holds ciphertext, and the key lives only in the
// services' environment (LINEPIPE_SECRET_KEY or LINEPIPE_SECRET_KEY_FILE).
//
// A sealed value reads "enc:v1:<kid>:<base64url(nonce || ciphertext)>",
// AES-256-GCM with a random 96-bit nonce. The kid names the key, so a
// keyring can hold several: values are sealed with the first and opened
// with whichever key they name, which is how a key is rotated. Values
// without the prefix are plaintext and read as they are, so rows written
// before a key was configured keep working.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Prefix marks a sealed value.
const Prefix = "enc:v1:"

// ErrNoKey means a sealed value was read but no key is configured, or
// none with its kid.
var ErrNoKey = errors.New("secretbox: no key for sealed value")

// ErrCorrupt means a sealed value does not decrypt: wrong key material
// under the same kid, a truncated value, or a value moved to another
// column or channel (the associated data no longer matches).
var ErrCorrupt = errors.New("secretbox: sealed value does not decrypt")

type key struct {
	id   string
	aead cipher.AEAD
}

// Keyring is the configured keys, the first used to seal. A nil *Keyring
// is valid: it seals nothing and opens only plaintext.
type Keyring struct {
	keys []key
}

// ParseKeys reads a comma-separated list of 32-byte keys, each as 64 hex
// digits or base64 (standard or URL alphabet, padded or not). The first
// seals; all open.
func ParseKeys(s string) (*Keyring, error) {
	var k Keyring
	seen := map[string]bool{}
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		raw, err := decodeKey(f)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		id := KeyID(raw)
		if seen[id] {
			return nil, fmt.Errorf("key %d: listed twice", i+1)
		}
		seen[id] = true
		k.keys = append(k.keys, key{id: id, aead: aead})
	}
	if len(k.keys) == 0 {
		return nil, errors.New("no key given")
	}
	return &k, nil
}

func decodeKey(s string) ([]byte, error) {
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("%d bytes, want 32", len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("neither 64 hex digits nor base64 of 32 bytes")
}

// KeyID names a key without revealing it: the first 8 hex digits of its
// SHA-256.
func KeyID(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:4])
}

// Enabled reports whether values are sealed.
func (k *Keyring) Enabled() bool { return k != nil && len(k.keys) > 0 }

// SealingKeyID is the kid new values are sealed with, "" without keys.
func (k *Keyring) SealingKeyID() string {
	if !k.Enabled() {
		return ""
	}
	return k.keys[0].id
}

// Seal encrypts plain under the first key, bound to aad (what the value
// is: column and row), so a sealed value copied elsewhere does not open.
// Without keys, and for the empty string, it returns plain unchanged.
func (k *Keyring) Seal(aad, plain string) (string, error) {
	if !k.Enabled() || plain == "" {
		return plain, nil
	}
	key := k.keys[0]
	nonce := make([]byte, key.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	sealed := key.aead.Seal(nonce, nonce, []byte(plain), []byte(aad))
	return Prefix + key.id + ":" + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// Open returns the plaintext of stored: stored itself when it is not
// sealed, the decryption under the key it names otherwise.
func (k *Keyring) Open(aad, stored string) (string, error) {
	if !IsSealed(stored) {
		return stored, nil
	}
	kid, payload, ok := strings.Cut(strings.TrimPrefix(stored, Prefix), ":")
	if !ok {
		return "", ErrCorrupt
	}
	if k == nil {
		return "", ErrNoKey
	}
	for _, key := range k.keys {
		if key.id != kid {
			continue
		}
		raw, err := base64.RawURLEncoding.DecodeString(payload)
		ns := key.aead.NonceSize()
		if err != nil || len(raw) < ns+key.aead.Overhead() {
			return "", ErrCorrupt
		}
		plain, err := key.aead.Open(nil, raw[:ns], raw[ns:], []byte(aad))
		if err != nil {
			return "", ErrCorrupt
		}
		return string(plain), nil
	}
	return "", fmt.Errorf("%w (key id %s)", ErrNoKey, kid)
}

// IsSealed reports whether stored is a sealed value.
func IsSealed(stored string) bool { return strings.HasPrefix(stored, Prefix) }

// NeedsReseal reports whether stored should be rewritten: plaintext while
// a key is configured, or sealed under a key other than the first.
func (k *Keyring) NeedsReseal(stored string) bool {
	if !k.Enabled() || stored == "" {
		return false
	}
	if !IsSealed(stored) {
		return true
	}
	return !strings.HasPrefix(stored, Prefix+k.keys[0].id+":")
}

// FromEnv reads LINEPIPE_SECRET_KEY (or LINEPIPE_SECRET_KEY_FILE) through
// env (a config.Env). Unset means no keyring (nil) and no error.
func FromEnv(env interface{ String(string, string) string }) (*Keyring, error) {
	v := env.String("LINEPIPE_SECRET_KEY", "")
	if v == "" {
		return nil, nil
	}
	k, err := ParseKeys(v)
	if err != nil {
		return nil, fmt.Errorf("LINEPIPE_SECRET_KEY: %w", err)
	}
	return k, nil
}
