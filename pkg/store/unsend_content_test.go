package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// An unsend marks the message's content for deletion wherever it is
// applied, the worker's batch or a dead-lettered unsend's transaction,
// because QueueUnsends itself does it: a row with an object to delete
// becomes unsent and loses what described the content; an external one,
// with nothing stored, ends deleted.
func TestUnsendMarksContent(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	ctx := context.Background()
	const ch = "1650000077"
	var b pgx.Batch
	store.QueueRecordContents(&b, []store.ContentRecord{
		{MessageKey: store.MessageKey{ChannelID: ch, MessageID: "img"}, MessageType: "image", FileName: "a.jpg"},
		{MessageKey: store.MessageKey{ChannelID: ch, MessageID: "ext"}, MessageType: "image", External: true,
			OriginalURL: "https://example.com/a.jpg"},
	})
	if err := db.Pool.SendBatch(ctx, &b).Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"img", "ext"} {
		var u pgx.Batch
		store.QueueUnsend(&u, store.MessageKey{ChannelID: ch, MessageID: id}, time.Now(), "unsend-"+id)
		if err := db.Pool.SendBatch(ctx, &u).Close(); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"img": store.ContentUnsent, "ext": store.ContentDeleted}
	for id, status := range want {
		var got string
		var described bool
		if err := db.Pool.QueryRow(ctx, `SELECT status, coalesce(file_name, original_url) IS NOT NULL
			FROM message_content WHERE channel_id = $1 AND message_id = $2`, ch, id).Scan(&got, &described); err != nil {
			t.Fatal(err)
		}
		if got != status || described {
			t.Fatalf("content of %s after its unsend: status %s (want %s), still described: %v", id, got, status, described)
		}
	}
}
