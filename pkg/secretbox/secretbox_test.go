package secretbox

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

var (
	rawA = []byte("0123456789abcdef0123456789abcdef")
	rawB = []byte("fedcba9876543210fedcba9876543210")
)

func TestSealOpenRoundTripAndBinding(t *testing.T) {
	t.Parallel()
	k, err := ParseKeys(hex.EncodeToString(rawA))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := k.Seal("channels.channel_secret:1", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sealed, Prefix+KeyID(rawA)+":") || strings.Contains(sealed, "s3cret") {
		t.Fatalf("sealed value %q: want the prefix and kid, and no plaintext", sealed)
	}
	again, _ := k.Seal("channels.channel_secret:1", "s3cret")
	if again == sealed {
		t.Fatal("two seals of one value are equal: the nonce is not random")
	}
	if got, err := k.Open("channels.channel_secret:1", sealed); err != nil || got != "s3cret" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := k.Open("channels.channel_secret:2", sealed); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a value moved to another row opened: %v", err)
	}
	if _, err := k.Open("channels.channel_secret:1", sealed[:len(sealed)-3]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a truncated value opened: %v", err)
	}
	if got, err := k.Open("x", "plain-old-row"); err != nil || got != "plain-old-row" {
		t.Fatalf("plaintext must read as it is: %q %v", got, err)
	}
	var none *Keyring
	if got, _ := none.Seal("x", "p"); got != "p" {
		t.Fatal("without keys values are stored as they are")
	}
	if _, err := none.Open("x", sealed); !errors.Is(err, ErrNoKey) {
		t.Fatalf("sealed value without a key: %v", err)
	}
}

// Rotation: the new key first seals, the old one still opens, and only
// values under the old key (or plaintext) need rewriting.
func TestRotation(t *testing.T) {
	t.Parallel()
	old, _ := ParseKeys(base64.StdEncoding.EncodeToString(rawA))
	sealedOld, _ := old.Seal("a", "v")
	both, err := ParseKeys(base64.RawURLEncoding.EncodeToString(rawB) + ", " + hex.EncodeToString(rawA))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := both.Open("a", sealedOld); err != nil || got != "v" {
		t.Fatalf("old value under the rotated keyring: %q %v", got, err)
	}
	sealedNew, _ := both.Seal("a", "v")
	if !strings.Contains(sealedNew, KeyID(rawB)) || both.SealingKeyID() != KeyID(rawB) {
		t.Fatal("the first key must seal")
	}
	if !both.NeedsReseal(sealedOld) || both.NeedsReseal(sealedNew) || !both.NeedsReseal("plain") {
		t.Fatal("NeedsReseal")
	}
	newOnly, _ := ParseKeys(hex.EncodeToString(rawB))
	if _, err := newOnly.Open("a", sealedOld); !errors.Is(err, ErrNoKey) {
		t.Fatalf("a retired key's value: %v", err)
	}
}

func TestParseKeysRejectsBadKeys(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "short", hex.EncodeToString(rawA[:16]), base64.StdEncoding.EncodeToString(rawA[:31]),
		hex.EncodeToString(rawA) + "," + hex.EncodeToString(rawA)} {
		if _, err := ParseKeys(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
