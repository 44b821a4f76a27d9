package events

import (
	"encoding/base64"
	"errors"
	"testing"
)

// The official test vector from LINE's signature documentation.
const (
	vectorBody   = `{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}`
	vectorSecret = "8c570fa6dd201bb328f1c1eac23a96d8"
	vectorSig    = "GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs="
)

func TestSignOfficialVector(t *testing.T) {
	t.Parallel()
	if got := Sign(vectorSecret, []byte(vectorBody)); got != vectorSig {
		t.Fatalf("Sign = %q, want %q", got, vectorSig)
	}
	if err := VerifySignature(vectorSecret, vectorSig, []byte(vectorBody)); err != nil {
		t.Fatalf("official vector rejected: %v", err)
	}
}

func TestVerifySignatureRejectsTampering(t *testing.T) {
	t.Parallel()
	sig, _ := base64.StdEncoding.DecodeString(vectorSig)
	flipped := append([]byte(nil), sig...)
	flipped[0] ^= 1
	cases := map[string]struct{ secret, sig, body string }{
		"body changed by one byte":   {vectorSecret, vectorSig, vectorBody[:len(vectorBody)-2] + "] }"},
		"body re-encoded with space": {vectorSecret, vectorSig, `{"destination": "U8e742f61d673b39c7fff3cecb7536ef0","events":[]}`},
		"wrong secret":               {"8c570fa6dd201bb328f1c1eac23a96d9", vectorSig, vectorBody},
		"signature bit flipped":      {vectorSecret, base64.StdEncoding.EncodeToString(flipped), vectorBody},
		"signature truncated":        {vectorSecret, vectorSig[:20], vectorBody},
		"signature not base64":       {vectorSecret, "!!not-base64!!", vectorBody},
		"signature missing":          {vectorSecret, "", vectorBody},
		"secret missing":             {"", Sign("", []byte(vectorBody)), vectorBody},
		"hex instead of base64":      {vectorSecret, "1a144a9af98799fe0f8bc0f1905f8f11ac9a1f43aab49b6d6718130fd7cc0cbb", vectorBody},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err := VerifySignature(c.secret, c.sig, []byte(c.body)); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("VerifySignature = %v, want ErrBadSignature", err)
			}
		})
	}
}

func BenchmarkVerifySignature(b *testing.B) {
	for _, size := range []int{len(vectorBody), 4 << 10, 64 << 10} {
		body := make([]byte, size)
		copy(body, vectorBody)
		sig := Sign(vectorSecret, body)
		b.Run(byteSize(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := VerifySignature(vectorSecret, sig, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func byteSize(n int) string {
	switch {
	case n >= 1<<10:
		return itoa(n>>10) + "KiB"
	default:
		return itoa(n) + "B"
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
