package linefake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/linepipe/linepipe/pkg/events"
)

// WebhookEvent is one event as LINE's webhook sender writes it (OAPI
// webhook.yml Event). Properties without a value are omitted, as at LINE.
type WebhookEvent struct {
	Type            string          `json:"type"`
	Message         *EventMessage   `json:"message,omitempty"`
	Unsend          *EventUnsend    `json:"unsend,omitempty"`
	Follow          *EventFollow    `json:"follow,omitempty"`
	WebhookEventID  string          `json:"webhookEventId"`
	DeliveryContext DeliveryContext `json:"deliveryContext"`
	Timestamp       int64           `json:"timestamp"`
	Source          *EventSource    `json:"source,omitempty"`
	ReplyToken      string          `json:"replyToken,omitempty"`
	Mode            string          `json:"mode"`
}

// EventMessage is a text message object of a message event.
type EventMessage struct {
	ID              string `json:"id"`
	Type            string `json:"type"`
	QuoteToken      string `json:"quoteToken,omitempty"`
	MarkAsReadToken string `json:"markAsReadToken,omitempty"`
	Text            string `json:"text,omitempty"`
	// Media messages (MediaEvent).
	ContentProvider *ContentProvider `json:"contentProvider,omitempty"`
	Duration        int64            `json:"duration,omitempty"`
	FileName        string           `json:"fileName,omitempty"`
	FileSize        int64            `json:"fileSize,omitempty"`
}

// ContentProvider says where a media message's content is.
type ContentProvider struct {
	Type               string `json:"type"`
	OriginalContentURL string `json:"originalContentUrl,omitempty"`
	PreviewImageURL    string `json:"previewImageUrl,omitempty"`
}

// EventUnsend is the unsend event's body.
type EventUnsend struct {
	MessageID string `json:"messageId"`
}

// EventFollow is the follow event's body.
type EventFollow struct {
	IsUnblocked bool `json:"isUnblocked"`
}

// DeliveryContext says whether LINE is redelivering the event.
type DeliveryContext struct {
	IsRedelivery bool `json:"isRedelivery"`
}

// EventSource is a user, group or room source.
type EventSource struct {
	Type    string `json:"type"`
	UserID  string `json:"userId,omitempty"`
	GroupID string `json:"groupId,omitempty"`
	RoomID  string `json:"roomId,omitempty"`
}

// WebhookBody is the whole webhook request body.
type WebhookBody struct {
	Destination string         `json:"destination"`
	Events      []WebhookEvent `json:"events"`
}

// TextEvent builds a text message event from userID, as LINE would send it
// now, with a fresh reply token registered for channelID.
func (s *Server) TextEvent(channelID, userID, text string) WebhookEvent {
	e := s.baseEvent(events.TypeMessage, userID)
	e.ReplyToken = s.IssueReplyToken(channelID)
	e.Message = &EventMessage{
		ID: s.nextMessageID(), Type: "text", Text: text,
		QuoteToken:      s.randomToken(24, b64Encoding),
		MarkAsReadToken: s.randomToken(16, b64Encoding),
	}
	return e
}

// FollowEvent builds a follow event (replyable) from userID.
func (s *Server) FollowEvent(channelID, userID string) WebhookEvent {
	e := s.baseEvent(events.TypeFollow, userID)
	e.ReplyToken = s.IssueReplyToken(channelID)
	e.Follow = &EventFollow{}
	return e
}

// UnfollowEvent builds an unfollow event; it has no reply token.
func (s *Server) UnfollowEvent(userID string) WebhookEvent {
	return s.baseEvent(events.TypeUnfollow, userID)
}

// UnsendEvent builds an unsend event for messageID; no reply token.
func (s *Server) UnsendEvent(userID, messageID string) WebhookEvent {
	e := s.baseEvent(events.TypeUnsend, userID)
	e.Unsend = &EventUnsend{MessageID: messageID}
	s.content.unsend(messageID) // LINE answers 410 for its content from now on
	return e
}

func (s *Server) baseEvent(typ, userID string) WebhookEvent {
	now := s.now()
	return WebhookEvent{
		Type: typ, Mode: "active", Timestamp: now.UnixMilli(),
		Source:         &EventSource{Type: "user", UserID: userID},
		WebhookEventID: s.newULID(now),
	}
}

// SendWebhook posts events to url as LINE does for channelID: the bot's
// user id as destination, the body signed with the channel secret in
// x-line-signature. It returns the response status.
func (s *Server) SendWebhook(ctx context.Context, url, channelID string, evs ...WebhookEvent) (int, error) {
	ch, ok := s.channels.get(channelID)
	if !ok {
		return 0, fmt.Errorf("sending webhook for %q: %w", channelID, ErrUnknownChannel)
	}
	if evs == nil {
		evs = []WebhookEvent{} // LINE's verification request: "events":[]
	}
	body, err := json.Marshal(WebhookBody{Destination: ch.BotUserID, Events: evs})
	if err != nil {
		return 0, fmt.Errorf("encoding webhook: %w", err)
	}
	return s.SendWebhookBody(ctx, url, channelID, body)
}

// RedeliverWebhook sends events again as LINE's redelivery does:
// identical, with the same webhookEventId and replyToken, but
// deliveryContext.isRedelivery true. Each reply token works for another
// ReplyTokenTTL unless it was used or the event is older than
// RedeliveredReplyLimit.
func (s *Server) RedeliverWebhook(ctx context.Context, url, channelID string, evs ...WebhookEvent) (int, error) {
	now := s.now()
	again := make([]WebhookEvent, len(evs))
	for i, e := range evs {
		e.DeliveryContext.IsRedelivery = true
		if e.ReplyToken != "" {
			s.replies.rearm(e.ReplyToken, now)
		}
		again[i] = e
	}
	return s.SendWebhook(ctx, url, channelID, again...)
}

// RearmReplyToken gives token a fresh ReplyTokenTTL, as LINE does when
// it redelivers the event carrying it, for a load generator that sends
// its own redeliveries. It reports whether the token will work: not if it
// is unknown or used, or its event is older than RedeliveredReplyLimit.
func (s *Server) RearmReplyToken(token string) bool {
	return s.replies.rearm(token, s.now())
}

// SendWebhookBody signs body with channelID's secret and posts it as is,
// for bodies the builders do not cover (other event types, odd shapes).
func (s *Server) SendWebhookBody(ctx context.Context, url, channelID string, body []byte) (int, error) {
	ch, ok := s.channels.get(channelID)
	if !ok {
		return 0, fmt.Errorf("sending webhook for %q: %w", channelID, ErrUnknownChannel)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("building webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set(events.SignatureHeader, events.Sign(ch.Secret, body))
	client := *s.cfg.WebhookClient
	client.CheckRedirect = answerIsFinal
	res, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("posting webhook: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, nil
}

// answerIsFinal makes a redirect the webhook's answer rather than a
// request to follow: LINE counts any status outside 2xx as an error
// (error_status_code in its webhook error statistics, and a cause of
// redelivery) and does not post the webhook again elsewhere, so a bot
// server that redirects must fail here as it would at LINE.
func answerIsFinal(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// newULID returns a webhookEventId for time t, its entropy from the
// seeded source so runs are reproducible.
func (s *Server) newULID(t time.Time) string {
	var e [10]byte
	s.chaos.bytes(e[:])
	return events.ULID(uint64(t.UnixMilli()), e)
}
