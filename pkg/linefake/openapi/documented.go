package openapi

// Limits LINE documents in prose but messaging-api.yml does not state
// (the definition gives text no maxLength and requests no size bound).
// They live here once, for the emulator to enforce and the sender's tests
// to compare against.
const (
	// TextMaxUTF16 is a text message's length limit, in UTF-16 code units:
	// "Max character limit: 5000" (Messaging API reference, Text message).
	TextMaxUTF16 = 5000
	// MaxBodyBytes is the largest send request: "Request larger than 2MB"
	// gets 413 (Messaging API reference, Status codes). LINE does not say
	// whether its MB is 10^6 or 2^20 bytes; the smaller reading is taken,
	// so a body the sender lets through is one LINE accepts under either.
	MaxBodyBytes = 2_000_000
)
