// Package encryption keeps personal data out of Temporal: a payload codec that encrypts every workflow
// and activity payload (inputs, results, signals, updates, queries, memos) with AES-256-GCM before it
// leaves the process, so that purchaser and beneficiary e-mail addresses never sit in clear in workflow
// histories or in the Temporal database. Search attributes are indexed by the server and are not
// encrypted; the engine puts no personal data in them.
//
// Keys have IDs so that they can be rotated: the codec encrypts with one key and decrypts with any key
// it was given, and payloads written before encryption was turned on (no encryption metadata) pass
// through unchanged.
package encryption

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// Metadata the codec writes on an encrypted payload.
const (
	// MetadataEncoding marks an encrypted payload (Temporal's "encoding" metadata key).
	MetadataEncoding = "encoding"
	// Encoding is the value of MetadataEncoding on an encrypted payload.
	Encoding = "binary/encrypted"
	// MetadataKeyID names the key that encrypted the payload.
	MetadataKeyID = "encryption-key-id"
)

// KeySize is the size of an AES-256 key.
const KeySize = 32

// Codec is a converter.PayloadCodec that encrypts with one key and decrypts with any of its keys.
type Codec struct {
	current string
	aeads   map[string]cipher.AEAD
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New returns a codec that encrypts with keys[current] and decrypts with any of keys.
func New(keys map[string][]byte, current string) (*Codec, error) {
	if len(keys) == 0 {
		return nil, errors.New("encryption: no keys")
	}
	if _, ok := keys[current]; !ok {
		return nil, fmt.Errorf("encryption: the key to encrypt with, %q, is not among the keys given", current)
	}
	c := &Codec{current: current, aeads: map[string]cipher.AEAD{}}
	for id, k := range keys {
		if id == "" || strings.ContainsAny(id, "=, ") {
			return nil, fmt.Errorf("encryption: key ID %q: use letters, digits, dashes", id)
		}
		if len(k) != KeySize {
			return nil, fmt.Errorf("encryption: key %q has %d bytes, want %d (AES-256)", id, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("encryption: key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("encryption: key %q: %w", id, err)
		}
		c.aeads[id] = aead
	}
	return c, nil
}

// Parse reads keys written as "id=key,id=key" (each key 32 bytes, as 64 hex digits or in base64) and
// returns a codec that encrypts with current, or with the first key listed when current is empty.
func Parse(spec, current string) (*Codec, error) {
	keys := map[string][]byte{}
	first := ""
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, value, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("encryption: %q is not id=key", redact(part))
		}
		id = strings.TrimSpace(id)
		k, err := decodeKey(strings.TrimSpace(value))
		if err != nil {
			return nil, fmt.Errorf("encryption: key %q: %w", id, err)
		}
		if _, dup := keys[id]; dup {
			return nil, fmt.Errorf("encryption: key %q is listed twice", id)
		}
		keys[id] = k
		if first == "" {
			first = id
		}
	}
	if current == "" {
		current = first
	}
	return New(keys, current)
}

// redact keeps a malformed entry's shape in an error without printing the secret it may hold.
func redact(s string) string {
	if len(s) <= 4 {
		return "…"
	}
	return s[:4] + "…"
}

func decodeKey(v string) ([]byte, error) {
	if len(v) == 2*KeySize {
		if k, err := hex.DecodeString(v); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(v); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("%d bytes, want %d (AES-256)", len(k), KeySize)
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("not %d bytes in hex or base64", KeySize)
}

// NewKey returns a fresh random key, in the hex form Parse reads.
func NewKey() (string, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return "", err
	}
	return hex.EncodeToString(k), nil
}

// KeyIDs lists the codec's key IDs, the one it encrypts with first.
func (c *Codec) KeyIDs() []string {
	ids := []string{c.current}
	for id := range c.aeads {
		if id != c.current {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids[1:])
	return ids
}

// Encode encrypts each payload whole (its metadata and data) with the current key.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.aeads[c.current]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encryption: marshal payload: %w", err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("encryption: nonce: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{MetadataEncoding: []byte(Encoding), MetadataKeyID: []byte(c.current)},
			Data:     aead.Seal(nonce, nonce, plain, []byte(c.current)),
		}
	}
	return out, nil
}

// Decode decrypts each encrypted payload with the key it names; others pass through unchanged.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[MetadataEncoding]) != Encoding {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := c.aeads[id]
		if !ok {
			return nil, fmt.Errorf("encryption: payload encrypted with key %q, which this process was not given (PAYLOAD_KEYS)", id)
		}
		data := p.GetData()
		if len(data) < aead.NonceSize() {
			return nil, errors.New("encryption: payload too short")
		}
		plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], []byte(id))
		if err != nil {
			return nil, fmt.Errorf("encryption: payload does not decrypt with key %q: %w", id, err)
		}
		var dec commonpb.Payload
		if err := proto.Unmarshal(plain, &dec); err != nil {
			return nil, fmt.Errorf("encryption: unmarshal payload: %w", err)
		}
		out[i] = &dec
	}
	return out, nil
}

// DataConverter is Temporal's default data converter with c around it: what the clients and workers of
// the engine use when keys are configured.
func DataConverter(c *Codec) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}
