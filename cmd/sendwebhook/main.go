// Command sendwebhook sends one signed LINE webhook to ingest, the way
// LINE does, so a newcomer can watch an event become rows in Postgres:
//
//	sendwebhook -text "hello"            # a text message event
//	sendwebhook -unsend <messageId>      # the user unsends it
//
// With -emulator it asks the running LINE emulator to send the webhook,
// so the event's reply token is one the emulator will accept (the echo
// bot's reply then reaches the emulator).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/linepipe/linepipe/pkg/buildinfo"
	"github.com/linepipe/linepipe/pkg/linefake"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sendwebhook:", err)
		os.Exit(1)
	}
}

func run() error {
	url := flag.String("url", "http://localhost:8080/webhook/"+env("LINE_CHANNEL_ID", "1234567890"), "ingest webhook URL")
	channel := flag.String("channel", env("LINE_CHANNEL_ID", "1234567890"), "channel id")
	secret := flag.String("secret", "", "channel secret (default $LINE_CHANNEL_SECRET)")
	user := flag.String("user", "U0123456789abcdef0123456789abcdef", "sending user id")
	text := flag.String("text", "", "send a text message event with this text")
	unsend := flag.String("unsend", "", "send an unsend event for this message id")
	emulator := flag.String("emulator", "", "emulator base URL (e.g. http://localhost:8090): let it send the webhook")
	version := flag.Bool("version", false, "print version and commit, and exit")
	flag.Parse()
	if *version {
		fmt.Println(buildinfo.Get().String("sendwebhook"))
		return nil
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "sendwebhook: unexpected argument %q\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}
	if *secret == "" {
		*secret = os.Getenv("LINE_CHANNEL_SECRET")
	}
	if (*text == "") == (*unsend == "") {
		return errors.New("give exactly one of -text or -unsend")
	}
	spec := linefake.EventSpec{Type: "text", UserID: *user, Text: *text}
	if *unsend != "" {
		spec = linefake.EventSpec{Type: "unsend", UserID: *user, MessageID: *unsend}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var res linefake.WebhookResult
	if *emulator != "" {
		req, _ := json.Marshal(linefake.WebhookRequest{URL: *url, ChannelID: *channel, Specs: []linefake.EventSpec{spec}})
		resp, err := http.Post(*emulator+linefake.PathAdminWebhooks, "application/json", bytes.NewReader(req))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("emulator answered %s", resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
			return err
		}
	} else {
		if *secret == "" {
			return errors.New("-secret or LINE_CHANNEL_SECRET is required")
		}
		fake := linefake.New(linefake.Config{Channels: []linefake.Channel{{ID: *channel, Secret: *secret}}})
		ev := fake.TextEvent(*channel, *user, *text)
		if *unsend != "" {
			ev = fake.UnsendEvent(*user, *unsend)
		}
		status, err := fake.SendWebhook(ctx, *url, *channel, ev)
		if err != nil {
			return err
		}
		res = linefake.WebhookResult{Status: status, Events: []linefake.WebhookEvent{ev}}
	}
	out := map[string]any{"status": res.Status}
	if len(res.Events) > 0 {
		e := res.Events[0]
		out["webhookEventId"] = e.WebhookEventID
		if e.Message != nil {
			out["messageId"] = e.Message.ID
		}
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
	if res.Status != http.StatusOK {
		return fmt.Errorf("ingest answered %d", res.Status)
	}
	return nil
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
