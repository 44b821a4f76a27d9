package loadgen

import "encoding/json"

// The webhook body as LINE sends it (webhook.yml CallbackRequest and the
// Event schemas). Properties without a value are omitted, as LINE does.

type wireBody struct {
	Destination string      `json:"destination"`
	Events      []wireEvent `json:"events"`
}

type wireSource struct {
	Type    string `json:"type"`
	GroupID string `json:"groupId,omitempty"`
	UserID  string `json:"userId,omitempty"`
}

type wireDelivery struct {
	IsRedelivery bool `json:"isRedelivery"`
}

type wireEvent struct {
	Type            string        `json:"type"`
	Message         *wireMessage  `json:"message,omitempty"`
	Follow          *wireFollow   `json:"follow,omitempty"`
	Postback        *wirePostback `json:"postback,omitempty"`
	Unsend          *wireUnsend   `json:"unsend,omitempty"`
	FutureThing     *wireFuture   `json:"futureThing,omitempty"`
	RolloutStage    string        `json:"rolloutStage,omitempty"`
	Mode            string        `json:"mode"`
	Timestamp       int64         `json:"timestamp"`
	Source          wireSource    `json:"source"`
	WebhookEventID  string        `json:"webhookEventId"`
	DeliveryContext wireDelivery  `json:"deliveryContext"`
	ReplyToken      string        `json:"replyToken,omitempty"`
}

type wireMessage struct {
	ID                  string               `json:"id"`
	Type                string               `json:"type"`
	Text                string               `json:"text,omitempty"`
	PackageID           string               `json:"packageId,omitempty"`
	StickerID           string               `json:"stickerId,omitempty"`
	StickerResourceType string               `json:"stickerResourceType,omitempty"`
	Keywords            []string             `json:"keywords,omitempty"`
	ContentProvider     *wireContentProvider `json:"contentProvider,omitempty"`
	ImageSet            *wireImageSet        `json:"imageSet,omitempty"`
	QuoteToken          string               `json:"quoteToken,omitempty"`
	MarkAsReadToken     string               `json:"markAsReadToken,omitempty"`
}

type wireContentProvider struct {
	Type string `json:"type"`
}

type wireImageSet struct {
	ID    string `json:"id"`
	Index int    `json:"index"`
	Total int    `json:"total"`
}

type wireFollow struct {
	IsUnblocked bool `json:"isUnblocked"`
}

type wirePostback struct {
	Data   string            `json:"data"`
	Params map[string]string `json:"params,omitempty"`
}

type wireUnsend struct {
	MessageID string `json:"messageId"`
}

// wireFuture is the payload of an event type LINE has not released. Ingest
// must store such events as they came rather than reject them.
type wireFuture struct {
	Level    int             `json:"level"`
	Tags     []string        `json:"tags"`
	Settings json.RawMessage `json:"settings"`
}
