package store

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

// The verifier is the one RFC 7677's example exchange authenticates
// against (user "user", password "pencil"): the client's proof, checked
// as a server checks it, gives the stored key, and the server key gives
// the server's signature.
func TestScramVerifierMatchesRFC7677(t *testing.T) {
	t.Parallel()
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, ok, err := scramVerifier("pencil", salt, 4096)
	if err != nil || !ok {
		t.Fatalf("verifier: %v, %v", ok, err)
	}
	head, keys, found := strings.Cut(v, "$")
	parts := strings.Split(keys, "$")
	if !found || head != "SCRAM-SHA-256" || len(parts) != 2 || parts[0] != "4096:W22ZaJ0SNY7soEsUEjb6gQ==" {
		t.Fatalf("verifier %q is not SCRAM-SHA-256$4096:<salt>$<stored>:<server>", v)
	}
	stored64, server64, _ := strings.Cut(parts[1], ":")
	stored, _ := base64.StdEncoding.DecodeString(stored64)
	server, _ := base64.StdEncoding.DecodeString(server64)

	const nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	auth := "n=user,r=rOprNGfwEbeRWgbNEkqO," + "r=" + nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096," + "c=biws,r=" + nonce
	proof, _ := base64.StdEncoding.DecodeString("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	sig := scramHMAC(stored, auth)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ sig[i]
	}
	if got := sha256.Sum256(clientKey); !hmac.Equal(got[:], stored) {
		t.Error("the RFC's client proof does not verify against the stored key")
	}
	if got := base64.StdEncoding.EncodeToString(scramHMAC(server, auth)); got != "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Errorf("server signature %s, want the RFC's", got)
	}
}

// A password SASLprep might change is not hashed here: the verifier
// would not match what clients compute from it.
func TestScramVerifierLeavesNonASCIIToTheServer(t *testing.T) {
	t.Parallel()
	for _, pw := range []string{"pässword", "tab\there", "nul\x00"} {
		if _, ok, err := scramVerifier(pw, []byte("0123456789abcdef"), 4096); ok || err != nil {
			t.Errorf("%q: hashed (%v, %v); want it left to the server", pw, ok, err)
		}
	}
}
