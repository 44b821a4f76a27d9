package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf16"

	"github.com/jackc/pgx/v5"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/store"
)

// HandlersFromSettings is the bot logic the worker binary runs.
func HandlersFromSettings(s Settings) []Handler {
	var hs []Handler
	if s.EchoBot {
		hs = append(hs, EchoBot{})
	}
	return hs
}

// Reply-token validity (LINE: use within one minute of receiving the
// webhook; a redelivered event's token also dies 20 minutes after the
// event occurred).
const (
	replyTokenTTL         = time.Minute
	redeliveredTokenLimit = 20 * time.Minute
	maxTextUnits          = 5000 // LINE's text message limit, in UTF-16 code units
)

// EchoBot replies to each text message with its text. It is the sample
// of bot logic: it writes an outbox row in the worker's transaction, so
// the event and its reply commit together, and never replies in standby
// mode, where LINE says the bot shouldn't send messages.
type EchoBot struct{}

// EnqueueOnly implements EnqueueOnly: the echo only queues its reply.
func (EchoBot) EnqueueOnly() {}

// Handle implements Handler.
func (EchoBot) Handle(ctx context.Context, tx pgx.Tx, s Stored) error {
	ev := s.Event
	if ev.Type != events.TypeMessage || ev.Mode == "standby" || ev.ReplyToken == "" || s.Unsent ||
		ev.Message == nil || ev.Message.Type != "text" {
		return nil
	}
	body, err := json.Marshal(map[string]any{
		"replyToken": ev.ReplyToken,
		"messages":   []map[string]string{{"type": "text", "text": truncateUTF16(ev.Message.Text, maxTextUnits)}},
	})
	if err != nil {
		return err
	}
	notAfter := replyDeadline(s.Meta.ReceivedAt, ev.Time(), ev.DeliveryContext.IsRedelivery)
	err = s.Enqueue(store.OutboxInsert{ChannelID: s.ChannelID, Endpoint: "reply", Body: body,
		SourceMessageID: ev.Message.ID, NotAfter: &notAfter})
	if err != nil {
		return fmt.Errorf("echo reply: %w", err)
	}
	return nil
}

// replyDeadline is when a reply token stops being usable.
func replyDeadline(received, occurred time.Time, redelivered bool) time.Time {
	d := received.Add(replyTokenTTL)
	if redelivered {
		if limit := occurred.Add(redeliveredTokenLimit); limit.Before(d) {
			d = limit
		}
	}
	return d
}

// truncateUTF16 cuts s to at most n UTF-16 code units without splitting a
// surrogate pair.
func truncateUTF16(s string, n int) string {
	units := 0
	for i, r := range s {
		w := len(utf16.Encode([]rune{r}))
		if units+w > n {
			return s[:i]
		}
		units += w
	}
	return s
}
