package events

// Hooks for the external tests of this package.
var (
	WalkEvent      = walkEvent
	WalkWebhookLog = walkWebhookLog
)
