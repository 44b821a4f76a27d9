package loadgen

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// genEvent is one generated event and what the run must remember of it.
type genEvent struct {
	wire      wireEvent
	kind      string
	messageID string       // set for text, sticker and image
	text      string       // the text of a text message
	unsendOf  *sentMessage // set for an unsend: the message it takes back
}

// webhook is one generated webhook request. Redeliveries resend the same
// events; only isRedelivery changes.
type webhook struct {
	seq         int
	channel     Channel
	destination string
	events      []genEvent
}

// body renders the request body. LINE's redelivery differs from the
// original only in deliveryContext.isRedelivery.
func (w *webhook) body(redelivery bool) ([]byte, error) {
	b := wireBody{Destination: w.destination, Events: make([]wireEvent, len(w.events))}
	for i := range w.events {
		b.Events[i] = w.events[i].wire
		b.Events[i].DeliveryContext.IsRedelivery = redelivery
	}
	out, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encoding webhook %d: %w", w.seq, err)
	}
	return out, nil
}

// builder makes webhooks: it picks kinds by weight, users, sources and
// IDs, and takes unsend targets from the messages the server accepted.
type builder struct {
	cfg          *Config
	rnd          *lockedRand
	ulids        *ulidGen
	msgIDs       *messageIDs
	users        []string
	groups       []string
	destinations []string
	kinds        []string
	cum          []int
	total        int

	mu    sync.Mutex
	pools map[string]*sentPool // by channel ID
	// substituted counts unsends that found nothing to unsend and were
	// sent as text messages instead.
	substituted int64
}

func newBuilder(cfg *Config, rnd *lockedRand) *builder {
	b := &builder{
		cfg:    cfg,
		rnd:    rnd,
		ulids:  newULIDGen(cfg.Now, rnd),
		msgIDs: newMessageIDs(rnd),
		pools:  map[string]*sentPool{},
	}
	for i := 0; i < cfg.Users; i++ {
		b.users = append(b.users, "U"+rnd.hexID(16))
	}
	for i := 0; i < max(1, cfg.Users/20); i++ {
		b.groups = append(b.groups, "C"+rnd.hexID(16))
	}
	for _, ch := range cfg.Channels {
		b.destinations = append(b.destinations, "U"+rnd.hexID(16))
		b.pools[ch.ID] = newSentPool(cfg.UnsendPool, rnd)
	}
	for _, k := range cfg.Mix.sortedKinds() {
		b.total += cfg.Mix[k]
		b.kinds = append(b.kinds, k)
		b.cum = append(b.cum, b.total)
	}
	return b
}

// next builds webhook number seq, for channel seq mod len(Channels).
func (b *builder) next(seq int) *webhook {
	ci := seq % len(b.cfg.Channels)
	w := &webhook{seq: seq, channel: b.cfg.Channels[ci], destination: b.destinations[ci]}
	ts := b.cfg.Now().UnixMilli()
	for i := 0; i < b.cfg.EventsPerRequest; i++ {
		w.events = append(w.events, b.event(w.channel.ID, b.pickKind(), ts))
	}
	return w
}

func (b *builder) pickKind() string {
	n := b.rnd.IntN(b.total)
	for i, c := range b.cum {
		if n < c {
			return b.kinds[i]
		}
	}
	return b.kinds[len(b.kinds)-1]
}

func (b *builder) userSource() wireSource {
	return wireSource{Type: "user", UserID: b.users[b.rnd.IntN(len(b.users))]}
}

// chatSource is a 1:1 or, with probability GroupShare, a group source.
// Group sources carry the sender's userId, as they do for message events.
func (b *builder) chatSource() wireSource {
	s := b.userSource()
	if b.cfg.GroupShare > 0 && b.rnd.Float64() < b.cfg.GroupShare {
		s.Type = "group"
		s.GroupID = b.groups[b.rnd.IntN(len(b.groups))]
	}
	return s
}

func (b *builder) event(channelID, kind string, ts int64) genEvent {
	e := genEvent{kind: kind, wire: wireEvent{Type: kind, Mode: "active", Timestamp: ts}}
	if kind == KindUnsend {
		if target := b.takeSent(channelID); target != nil {
			e.unsendOf = target
			e.wire.Source = target.source
			e.wire.Unsend = &wireUnsend{MessageID: target.messageID}
			e.wire.WebhookEventID = b.ulids.New()
			return e
		}
		// Nothing accepted yet on this channel: an unsend must name a
		// message the server has, so send a message instead.
		b.mu.Lock()
		b.substituted++
		b.mu.Unlock()
		kind = KindText
		e.kind = kind
	}
	e.wire.WebhookEventID = b.ulids.New()
	e.wire.ReplyToken = b.rnd.hexID(16)
	switch kind {
	case KindText, KindSticker, KindImage:
		e.wire.Type = "message"
		e.wire.Source = b.chatSource()
		e.messageID = b.msgIDs.New()
		e.wire.Message = b.message(kind, e.messageID)
		e.text = e.wire.Message.Text
	case KindFollow:
		e.wire.Source = b.userSource()
		e.wire.Follow = &wireFollow{IsUnblocked: b.rnd.IntN(4) == 0}
	case KindUnfollow:
		e.wire.Source = b.userSource()
		e.wire.ReplyToken = ""
	case KindPostback:
		e.wire.Source = b.chatSource()
		e.wire.Postback = b.postback()
	case KindFutureThing:
		// An unknown type: no reply token is assumed, and it carries both
		// an object and a top-level property no schema knows.
		e.wire.ReplyToken = ""
		e.wire.Source = b.userSource()
		e.wire.RolloutStage = "beta"
		e.wire.FutureThing = &wireFuture{
			Level:    1 + b.rnd.IntN(5),
			Tags:     []string{"alpha", "tag" + strconv.Itoa(b.rnd.IntN(100))},
			Settings: json.RawMessage(`{"nested":{"flag":true,"ratio":0.5},"list":[1,2,3]}`),
		}
	}
	if e.wire.ReplyToken != "" && b.cfg.ReplyTokens != nil {
		e.wire.ReplyToken = b.cfg.ReplyTokens.Issue(channelID)
	}
	return e
}

var stickerTypes = []string{"STATIC", "ANIMATION", "SOUND", "ANIMATION_SOUND", "POPUP", "MESSAGE"}

var words = []string{"hello", "order", "status", "thanks", "delivery", "when", "price", "coupon",
	"こんにちは", "ありがとう", "สวัสดี", "ขอบคุณ", "please", "help", "🙂", "tomorrow"}

func (b *builder) message(kind, id string) *wireMessage {
	m := &wireMessage{ID: id, Type: kind, QuoteToken: "q" + b.rnd.hexID(24), MarkAsReadToken: "r" + b.rnd.hexID(12)}
	switch kind {
	case KindText:
		// Each text carries a random token, so an audit can search stored
		// data for exactly this text after it was unsent.
		m.Text = fmt.Sprintf("lg-%s %s %s", b.rnd.hexID(6), words[b.rnd.IntN(len(words))], words[b.rnd.IntN(len(words))])
	case KindSticker:
		m.PackageID = strconv.Itoa(446 + b.rnd.IntN(10))
		m.StickerID = strconv.Itoa(1988 + b.rnd.IntN(50))
		m.StickerResourceType = stickerTypes[b.rnd.IntN(len(stickerTypes))]
		m.Keywords = []string{"Happy", "Hi"}
	case KindImage:
		m.ContentProvider = &wireContentProvider{Type: "line"}
		if b.rnd.IntN(4) == 0 {
			m.ImageSet = &wireImageSet{ID: b.rnd.hexID(16), Index: 1 + b.rnd.IntN(3), Total: 3}
		}
	}
	return m
}

func (b *builder) postback() *wirePostback {
	p := &wirePostback{Data: "action=buy&itemid=" + strconv.Itoa(b.rnd.IntN(1000))}
	if b.rnd.IntN(3) == 0 {
		p.Params = map[string]string{"datetime": time.UnixMilli(b.cfg.Now().UnixMilli()).UTC().Format("2006-01-02T15:04")}
	}
	return p
}

// accepted adds the messages of a webhook the server answered 2xx to the
// channel's unsend pool: only those may be unsent later.
func (b *builder) accepted(w *webhook) {
	for i := range w.events {
		e := &w.events[i]
		if e.messageID == "" {
			continue
		}
		b.pools[w.channel.ID].add(&sentMessage{
			messageID: e.messageID, text: e.text, source: e.wire.Source, eventID: e.wire.WebhookEventID,
		})
	}
}

func (b *builder) takeSent(channelID string) *sentMessage {
	return b.pools[channelID].take()
}

func (b *builder) substitutedUnsends() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.substituted
}
