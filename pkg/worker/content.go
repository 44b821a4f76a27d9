package worker

import (
	"encoding/json"

	"github.com/jackc/pgx/v5"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/store"
)

// queueContent records, in the batch's transaction, the content each new
// image, video, audio or file message points at, so a fetch is never only
// in memory. A message already unsent records nothing: its content is
// never fetched. (An unsend marks its content for deletion with the rest
// of store.QueueUnsends.)
func queueContent(b *pgx.Batch, items []*item, unsent map[store.MessageKey]bool) {
	var recs []store.ContentRecord
	for _, it := range items {
		ev := it.ev
		if it.id == 0 || ev == nil || ev.Type != events.TypeMessage || ev.Message == nil || ev.Message.ID == "" || unsent[it.key] {
			continue
		}
		if rec, ok := contentRecord(it); ok {
			recs = append(recs, rec)
		}
	}
	store.QueueRecordContents(b, recs)
}

// contentRecord reads what a message object says about its content. LINE
// keeps the bytes of image, video and audio whose contentProvider.type is
// "line", and of every file; "external" content stays with its provider,
// so only the URLs are recorded.
func contentRecord(it *item) (store.ContentRecord, bool) {
	m := it.ev.Message
	switch m.Type {
	case "image", "video", "audio", "file":
	default:
		return store.ContentRecord{}, false
	}
	var obj struct {
		ContentProvider *struct {
			Type               string `json:"type"`
			OriginalContentURL string `json:"originalContentUrl"`
			PreviewImageURL    string `json:"previewImageUrl"`
		} `json:"contentProvider"`
		FileName string `json:"fileName"`
		FileSize *int64 `json:"fileSize"`
	}
	// A message object of an unexpected shape is still fetched: its id and
	// type are known, and LINE is the authority on whether content exists.
	_ = json.Unmarshal(m.Raw, &obj)
	rec := store.ContentRecord{MessageKey: it.key, MessageType: m.Type, FileName: obj.FileName,
		FileSize: obj.FileSize, WebhookEventID: it.row.DedupID}
	if cp := obj.ContentProvider; m.Type != "file" && cp != nil && cp.Type == "external" {
		rec.External, rec.OriginalURL, rec.PreviewURL = true, cp.OriginalContentURL, cp.PreviewImageURL
	}
	return rec, true
}
