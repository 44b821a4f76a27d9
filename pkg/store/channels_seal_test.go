package store_test

import (
	"encoding/hex"
	"testing"

	"github.com/linepipe/linepipe/pkg/secretbox"
	"github.com/linepipe/linepipe/pkg/store"
)

// A sealed credential opens only in its own column of its own channel's
// row: copied into another channel's row, or from the secret's column
// into the token's, it is refused, so a writer to the table cannot make
// ingest verify one channel's webhooks with another's secret, or send
// with a secret as a token.
func TestSealedCredentialsAreBoundToColumnAndChannel(t *testing.T) {
	t.Parallel()
	keys, err := secretbox.ParseKeys(hex.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	if err != nil {
		t.Fatal(err)
	}
	a, err := store.Channel{ID: "1000000001", Secret: "secret-a", AccessToken: "token-a"}.Sealed(keys)
	if err != nil {
		t.Fatal(err)
	}
	if opened, err := a.Opened(keys); err != nil || opened.Secret != "secret-a" || opened.AccessToken != "token-a" {
		t.Fatalf("own row: %+v, %v; want it to open", opened, err)
	}
	for name, moved := range map[string]store.Channel{
		"secret into another channel":  {ID: "1000000002", Secret: a.Secret},
		"token into another channel":   {ID: "1000000002", Secret: "plain", AccessToken: a.AccessToken},
		"secret into the token column": {ID: a.ID, Secret: "plain", AccessToken: a.Secret},
		"token into the secret column": {ID: a.ID, Secret: a.AccessToken},
	} {
		if opened, err := moved.Opened(keys); err == nil {
			t.Errorf("%s: opened to %+v; want refused", name, opened)
		}
	}
}
