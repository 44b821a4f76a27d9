package store

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// scramIterations is Postgres's default scram_iterations.
const scramIterations = 4096

// scramVerifier is what Postgres stores for password under SCRAM-SHA-256
// (RFC 5802, RFC 7677), in the form CREATE ROLE ... PASSWORD accepts as
// already hashed. Sent instead of the password, it keeps the plaintext
// out of the statement, and so out of the server's log, which records a
// failed statement's text (log_min_error_statement) or every DDL
// (log_statement=ddl).
//
// ok is false for a password that SASLprep, which Postgres and libpq
// apply to it first, might change (anything but printable ASCII): its
// verifier would not match what clients compute, so the caller sends
// that password as it is.
func scramVerifier(password string, salt []byte, iterations int) (verifier string, ok bool, err error) {
	for i := 0; i < len(password); i++ {
		if c := password[i]; c < 0x20 || c > 0x7e {
			return "", false, nil
		}
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", false, err
	}
	clientKey := scramHMAC(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := scramHMAC(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(storedKey[:]), b64(serverKey)), true, nil
}

// newScramVerifier is scramVerifier with a fresh 16-byte salt, as
// Postgres makes its own.
func newScramVerifier(password string) (string, bool, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", false, err
	}
	return scramVerifier(password, salt, scramIterations)
}

func scramHMAC(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
