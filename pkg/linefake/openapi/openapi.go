// Package openapi reads LINE's limits for send requests from an in-repo
// copy of LINE's official Messaging API definition (messaging-api.yml,
// github.com/line/line-openapi, Apache-2.0), so the emulator enforces what
// LINE publishes and the sender's constants can be checked against it
// instead of both being typed by hand.
package openapi

import (
	_ "embed"
	"fmt"
	"slices"
	"sort"
	"strings"
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
	// Required is, per message type, the properties its schema and the
	// schemas it is composed of (allOf) require, "type" included, sorted.
	Required map[string][]string
}

type schema struct {
	Ref           string            `yaml:"$ref"`
	MaxItems      *int              `yaml:"maxItems"`
	MinItems      *int              `yaml:"minItems"`
	Required      []string          `yaml:"required"`
	AllOf         []schema          `yaml:"allOf"`
	Properties    map[string]schema `yaml:"properties"`
	Discriminator *struct {
		Mapping map[string]string `yaml:"mapping"`
	} `yaml:"discriminator"`
}

// schemaRefPrefix starts every reference to a schema of the definition.
const schemaRefPrefix = "#/components/schemas/"

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
	l.Required = map[string][]string{}
	for t, ref := range msg.Discriminator.Mapping {
		l.MessageTypes = append(l.MessageTypes, t)
		req, err := required(s, ref, 0)
		if err != nil {
			return Limits{}, fmt.Errorf("messaging-api.yml: message type %s: %w", t, err)
		}
		l.Required[t] = req
	}
	sort.Strings(l.MessageTypes)
	return l, nil
}

// required is the properties the schema ref points at requires, with
// those of every schema it is composed of (allOf), sorted and once each.
func required(s map[string]schema, ref string, depth int) ([]string, error) {
	name, ok := strings.CutPrefix(ref, schemaRefPrefix)
	sc, found := s[name]
	if !ok || !found {
		return nil, fmt.Errorf("no schema %q", ref)
	}
	if depth > 8 {
		return nil, fmt.Errorf("schema %q: allOf nested too deep", ref)
	}
	out := slices.Clone(sc.Required)
	for _, part := range sc.AllOf {
		out = append(out, part.Required...)
		if part.Ref != "" {
			more, err := required(s, part.Ref, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
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
