package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/content"
)

// contentCommand is `worker content get <channel> <message>`: it streams
// a message's stored content to stdout. It needs the sender's NATS
// credentials (the worker's user may not read the content bucket), so in
// compose it runs in the sender container. The 30 minutes are for the
// download; opening the bucket fails after content.OpenTimeout.
func contentCommand(env *config.Env, args []string) int {
	if len(args) != 3 || args[0] != "get" {
		fmt.Fprintln(os.Stderr, "usage: worker content get <channel> <message> > file")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	info, err := content.Get(ctx, env, args[1], args[2], os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker content get:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "%d bytes, %s, sha256 %s\n", info.Size, info.ContentType, info.SHA256)
	return 0
}
