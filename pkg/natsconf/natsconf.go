// Package natsconf holds linepipe's NATS server configuration (a copy of
// deploy/nats/nats.conf, which docker-compose mounts; a test keeps the two
// identical) and renders it for private servers: tests, make bench and
// make chaos run with the same users and permissions as a deployment, for
// their own stream, prefix and passwords.
package natsconf

import (
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"strconv"
	"strings"
)

// Conf is nats.conf as docker-compose mounts it.
//
//go:embed nats.conf
var Conf string

// Credentials are one NATS user's.
type Credentials struct {
	User     string
	Password string
}

// Users are the configuration's users.
type Users struct {
	Ingest, Worker, Sender, Admin Credentials
}

// NewUsers gives each user a fresh random password.
func NewUsers() Users {
	pw := func() string {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}
	return Users{Ingest: Credentials{"ingest", pw()}, Worker: Credentials{"worker", pw()}, Sender: Credentials{"sender", pw()},
		Admin: Credentials{"admin", pw()}}
}

// Options choose what Render substitutes.
type Options struct {
	Stream        string // default LINEPIPE
	SubjectPrefix string // default linepipe
	Consumer      string // default worker
	StoreDir      string // "": no store_dir line (the caller passes -sd)
	Users         Users
	// DefaultSync drops sync_interval: always, for measuring its cost and
	// for servers older than 2.10, which do not know the setting.
	DefaultSync bool
}

// Render is Conf for o: the names in the permissions, the store
// directory, the passwords written in (quoted), and the listen and
// monitoring lines removed so the caller chooses ports (command-line
// flags, or server.Options for an embedded server).
func Render(o Options) string {
	s := Conf
	if o.Stream != "" {
		s = strings.ReplaceAll(s, "LINEPIPE", o.Stream)
	}
	if o.Consumer != "" {
		st := o.Stream
		if st == "" {
			st = "LINEPIPE"
		}
		s = strings.ReplaceAll(s, "."+st+".worker", "."+st+"."+o.Consumer)
	}
	if o.SubjectPrefix != "" {
		s = strings.ReplaceAll(s, `"linepipe.`, `"`+o.SubjectPrefix+".")
	}
	if o.StoreDir != "" {
		s = strings.Replace(s, "store_dir: /data", "store_dir: "+strconv.Quote(o.StoreDir), 1)
	} else {
		// The caller passes -sd; the server refuses both.
		s = strings.Replace(s, "store_dir: /data\n", "", 1)
	}
	if o.DefaultSync {
		s = strings.Replace(s, "sync_interval: always", "", 1)
	}
	s = strings.Replace(s, "listen: 0.0.0.0:4222\n", "", 1)
	s = strings.Replace(s, "http: 8222\n", "", 1)
	for v, c := range map[string]Credentials{"$NATS_INGEST_PASSWORD": o.Users.Ingest, "$NATS_WORKER_PASSWORD": o.Users.Worker,
		"$NATS_SENDER_PASSWORD": o.Users.Sender, "$NATS_ADMIN_PASSWORD": o.Users.Admin} {
		s = strings.Replace(s, v, strconv.Quote(c.Password), 1)
	}
	return s
}
