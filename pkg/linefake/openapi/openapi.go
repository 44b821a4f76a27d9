// Package openapi reads LINE's limits for send requests from an in-repo
// copy of LINE's official Messaging API definition (messaging-api.yml,
// github.com/line/line-openapi, Apache-2.0), so the emulator enforces what
// LINE publishes and the sender's constants can be checked against it
// instead of both being typed by hand.
package openapi

import (
	_ "embed"
	"fmt"
	"sort"
	"sync"

	"go.yaml.in/yaml/v3"
)

//go:embed messaging-api.yml
var messagingAPI []byte

// MessagingAPI returns the embedded definition, byte for byte.
func MessagingAPI() []byte { return append([]byte(nil), messagingAPI...) }

// Endpoints are the send endpoints and the request schema of each.
var Endpoints = map[string]string{
	"reply":      "ReplyMessageRequest",
	"push":       "PushMessageRequest",
	"multicast":  "MulticastRequest",
	"narrowcast": "NarrowcastRequest",
	"broadcast":  "BroadcastRequest",
}

// Range is an array's size bounds as the definition states them.
type Range struct{ Min, Max int }

// Limits are the send-request limits messaging-api.yml states.
type Limits struct {
	// Messages bounds the messages array of each send endpoint.
	Messages map[string]Range
	// MulticastTo bounds multicast's to (user ids).
	MulticastTo Range
	// MessageTypes are the message object types (Message's discriminator).
	MessageTypes []string
}

type schema struct {
	MaxItems      *int              `yaml:"maxItems"`
	MinItems      *int              `yaml:"minItems"`
	Properties    map[string]schema `yaml:"properties"`
	Discriminator *struct {
		Mapping map[string]string `yaml:"mapping"`
	} `yaml:"discriminator"`
}

type document struct {
	Components struct {
		Schemas map[string]schema `yaml:"schemas"`
	} `yaml:"components"`
}

var parsed = sync.OnceValues(func() (Limits, error) { return Parse(messagingAPI) })

// Load returns the limits of the embedded definition.
func Load() (Limits, error) { return parsed() }

// MustLoad is Load for package initialisation: the file is part of the
// build, so an unreadable one is a programming error.
func MustLoad() Limits {
	l, err := Load()
	if err != nil {
		panic(err)
	}
	return l
}

// Parse reads the limits from a messaging-api.yml. Every limit must be
// present: a definition that stops stating one is an error, not a default.
func Parse(doc []byte) (Limits, error) {
	var d document
	if err := yaml.Unmarshal(doc, &d); err != nil {
		return Limits{}, fmt.Errorf("messaging-api.yml: %w", err)
	}
	s := d.Components.Schemas
	l := Limits{Messages: map[string]Range{}}
	for ep, name := range Endpoints {
		r, err := arrayRange(s, name, "messages")
		if err != nil {
			return Limits{}, err
		}
		l.Messages[ep] = r
	}
	var err error
	if l.MulticastTo, err = arrayRange(s, "MulticastRequest", "to"); err != nil {
		return Limits{}, err
	}
	msg, ok := s["Message"]
	if !ok || msg.Discriminator == nil || len(msg.Discriminator.Mapping) == 0 {
		return Limits{}, fmt.Errorf("messaging-api.yml: Message has no discriminator mapping")
	}
	for t := range msg.Discriminator.Mapping {
		l.MessageTypes = append(l.MessageTypes, t)
	}
	sort.Strings(l.MessageTypes)
	return l, nil
}

func arrayRange(s map[string]schema, name, prop string) (Range, error) {
	p, ok := s[name].Properties[prop]
	if !ok {
		return Range{}, fmt.Errorf("messaging-api.yml: %s has no property %q", name, prop)
	}
	if p.MaxItems == nil || p.MinItems == nil {
		return Range{}, fmt.Errorf("messaging-api.yml: %s.%s states no minItems/maxItems", name, prop)
	}
	return Range{Min: *p.MinItems, Max: *p.MaxItems}, nil
}
