// Package events knows the shape of what LINE sends: webhook signatures,
// the webhook body, and the few common fields of an event that linepipe
// routes on. It decodes tolerantly, because LINE adds event types, enum
// values and properties without notice; the raw bytes of every event are
// kept so nothing LINE sent is ever dropped.
package events
