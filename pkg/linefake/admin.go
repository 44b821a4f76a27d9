package linefake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// Admin API paths. They let a process outside Go (chaos runs,
// docker-compose development) drive and audit the emulator.
const (
	PathAdminDeliveries  = "/linefake/deliveries"
	PathAdminDuplicates  = "/linefake/duplicates"
	PathAdminFaults      = "/linefake/faults"
	PathAdminReplyTokens = "/linefake/reply-tokens"
	PathAdminChannels    = "/linefake/channels"
	PathAdminStats       = "/linefake/stats"
	PathAdminReset       = "/linefake/reset"
	PathAdminWebhooks    = "/linefake/webhooks"
)

func (s *Server) adminRoutes() {
	s.mux.HandleFunc("GET "+PathAdminDeliveries, s.adminDeliveries)
	s.mux.HandleFunc("GET "+PathAdminDuplicates, s.adminDuplicates)
	s.mux.HandleFunc("GET "+PathAdminFaults, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Faults())
	})
	s.mux.HandleFunc("PUT "+PathAdminFaults, s.adminSetFaults)
	s.mux.HandleFunc("POST "+PathAdminReplyTokens, s.adminReplyToken)
	s.mux.HandleFunc("POST "+PathAdminChannels, s.adminAddChannel)
	s.mux.HandleFunc("GET "+PathAdminStats, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	s.mux.HandleFunc("POST "+PathAdminReset, func(w http.ResponseWriter, _ *http.Request) {
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	s.mux.HandleFunc("POST "+PathAdminWebhooks, s.adminWebhook)
}

// decodeAdmin reads a small JSON admin body, answering 400 on failure.
func decodeAdmin(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad admin request: %v", err))
		return false
	}
	return true
}

// adminDeliveries is GET /linefake/deliveries[?channel=&endpoint=&since=].
// since=N returns only deliveries with Seq > N, so an auditor can poll.
func (s *Server) adminDeliveries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ch, ep := q.Get("channel"), q.Get("endpoint")
	since := 0
	if v := q.Get("since"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "since must be an integer")
			return
		}
		since = n
	}
	out := []Delivery{}
	for _, d := range s.Accepted() {
		if d.Seq > since && (ch == "" || d.Channel == ch) && (ep == "" || d.Endpoint == ep) {
			out = append(out, d)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// DuplicateGroup is one entry of GET /linefake/duplicates.
type DuplicateGroup struct {
	Key        string     `json:"key"`
	Deliveries []Delivery `json:"deliveries"`
}

// adminDuplicates is GET /linefake/duplicates?by=retryKey or
// ?path=messages.0.text: the groups with more than one accepted send.
func (s *Server) adminDuplicates(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var key func(Delivery) (string, bool)
	switch {
	case q.Get("by") == "retryKey":
		key = ByRetryKey
	case q.Get("path") != "":
		key = BodyField(q.Get("path"))
	default:
		writeError(w, http.StatusBadRequest, "give by=retryKey or path=<dotted body path>")
		return
	}
	dups := Duplicates(s.Accepted(), key)
	out := []DuplicateGroup{}
	for _, k := range sortedKeys(dups) {
		out = append(out, DuplicateGroup{Key: k, Deliveries: dups[k]})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) adminSetFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if !decodeAdmin(w, r, &f) {
		return
	}
	if err := s.SetFaults(f); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, f)
}

// adminReplyToken is POST /linefake/reply-tokens {"channelId"}.
func (s *Server) adminReplyToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ChannelID string `json:"channelId"`
	}
	if !decodeAdmin(w, r, &req) {
		return
	}
	if _, ok := s.channels.get(req.ChannelID); !ok {
		writeError(w, http.StatusNotFound, "unknown channel")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"replyToken": s.IssueReplyToken(req.ChannelID)})
}

// adminAddChannel is POST /linefake/channels with a Channel body. The
// answer leaves out the secret and tokens.
func (s *Server) adminAddChannel(w http.ResponseWriter, r *http.Request) {
	var ch Channel
	if !decodeAdmin(w, r, &ch) {
		return
	}
	if err := s.AddChannel(ch); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	got, _ := s.channels.get(ch.ID)
	writeJSON(w, http.StatusCreated, map[string]string{"id": got.ID, "botUserId": got.BotUserID})
}

// WebhookRequest is POST /linefake/webhooks: send built events to URL.
// Each event spec is {"type":"text","userId","text"},
// {"type":"follow","userId"}, {"type":"unfollow","userId"} or
// {"type":"unsend","userId","messageId"}. With Redeliver, Events holds
// full events from an earlier answer, sent again as a redelivery.
type WebhookRequest struct {
	URL       string         `json:"url"`
	ChannelID string         `json:"channelId"`
	Specs     []EventSpec    `json:"specs,omitempty"`
	Redeliver bool           `json:"redeliver,omitempty"`
	Events    []WebhookEvent `json:"events,omitempty"`
}

// EventSpec describes an event for the admin webhook endpoint to build.
type EventSpec struct {
	Type      string `json:"type"`
	UserID    string `json:"userId"`
	Text      string `json:"text,omitempty"`
	MessageID string `json:"messageId,omitempty"`
	Size      int64  `json:"size,omitempty"` // image, video, audio, file: content bytes
}

// WebhookResult answers POST /linefake/webhooks: the receiver's status
// and the events as sent, reply tokens included.
type WebhookResult struct {
	Status int            `json:"status"`
	Events []WebhookEvent `json:"events"`
}

func (s *Server) adminWebhook(w http.ResponseWriter, r *http.Request) {
	var req WebhookRequest
	if !decodeAdmin(w, r, &req) {
		return
	}
	if _, ok := s.channels.get(req.ChannelID); !ok || req.URL == "" {
		writeError(w, http.StatusBadRequest, "url and a known channelId are required")
		return
	}
	evs := req.Events
	if !req.Redeliver {
		evs = nil
		for _, sp := range req.Specs {
			e, err := s.buildEvent(req.ChannelID, sp)
			if err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			evs = append(evs, e)
		}
	}
	send := s.SendWebhook
	if req.Redeliver {
		send = s.RedeliverWebhook
	}
	status, err := send(r.Context(), req.URL, req.ChannelID, evs...)
	if err != nil {
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	for i := range evs {
		evs[i].DeliveryContext.IsRedelivery = req.Redeliver
	}
	writeJSON(w, http.StatusOK, WebhookResult{Status: status, Events: evs})
}

func (s *Server) buildEvent(channelID string, sp EventSpec) (WebhookEvent, error) {
	switch sp.Type {
	case "text":
		return s.TextEvent(channelID, sp.UserID, sp.Text), nil
	case "follow":
		return s.FollowEvent(channelID, sp.UserID), nil
	case "unfollow":
		return s.UnfollowEvent(sp.UserID), nil
	case "unsend":
		return s.UnsendEvent(sp.UserID, sp.MessageID), nil
	case "image", "video", "audio", "file":
		return s.MediaEvent(channelID, sp.UserID, sp.Type, sp.Size), nil
	}
	return WebhookEvent{}, fmt.Errorf("unknown event spec type %q", sp.Type)
}
