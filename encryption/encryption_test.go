package encryption_test

import (
	"bytes"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"saasengine/encryption"
)

func mustParse(t *testing.T, spec, current string) *encryption.Codec {
	t.Helper()
	c, err := encryption.Parse(spec, current)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const (
	keyA = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	keyB = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" // base64 of the same 32 bytes: still a separate key ID
)

// What goes through the codec comes back as it was, and what is stored holds no plain text.
func TestRoundTripHidesThePlainText(t *testing.T) {
	dc := encryption.DataConverter(mustParse(t, "a="+keyA, ""))
	p, err := dc.ToPayload(map[string]string{"emailId": "ada@contoso.example"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(p.Data, []byte("contoso")) || string(p.Metadata[encryption.MetadataEncoding]) != encryption.Encoding || string(p.Metadata[encryption.MetadataKeyID]) != "a" {
		t.Fatalf("stored payload is not encrypted with key a: %v", p)
	}
	var back map[string]string
	if err := dc.FromPayload(p, &back); err != nil || back["emailId"] != "ada@contoso.example" {
		t.Fatalf("round trip: %v %v", back, err)
	}
}

// Rotation: after the current key changes, what the old key wrote still reads, and what was written
// before encryption was turned on passes through.
func TestRotationAndUnencryptedPayloads(t *testing.T) {
	old := encryption.DataConverter(mustParse(t, "a="+keyA, ""))
	rotated := encryption.DataConverter(mustParse(t, "a="+keyA+",b="+keyB, "b"))
	plain := converter.GetDefaultDataConverter()
	for name, write := range map[string]converter.DataConverter{"old key": old, "no encryption": plain} {
		p, err := write.ToPayload("beneficiary@fabrikam.example")
		if err != nil {
			t.Fatal(err)
		}
		var s string
		if err := rotated.FromPayload(p, &s); err != nil || s != "beneficiary@fabrikam.example" {
			t.Errorf("%s: read back %q, %v", name, s, err)
		}
	}
	p, _ := rotated.ToPayload("x")
	if string(p.Metadata[encryption.MetadataKeyID]) != "b" {
		t.Errorf("the rotated codec encrypts with %q, want b", p.Metadata[encryption.MetadataKeyID])
	}
}

// A payload under a key the process was not given, or altered in storage, is an error, never garbage.
func TestUnknownKeyAndTamperingAreErrors(t *testing.T) {
	a := mustParse(t, "a="+keyA, "")
	b := mustParse(t, "b="+keyB, "")
	enc, err := a.Encode([]*commonpb.Payload{{Data: []byte("secret")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Decode(enc); err == nil || !strings.Contains(err.Error(), `key "a"`) {
		t.Errorf("decoding with the wrong keys: %v", err)
	}
	enc[0].Data[len(enc[0].Data)-1] ^= 1
	if _, err := a.Decode(enc); err == nil {
		t.Error("a tampered payload decoded")
	}
}

// Bad configuration is refused with a message that never repeats the key.
func TestParseRefusesBadKeys(t *testing.T) {
	for spec, want := range map[string]string{
		"":                             "no keys",
		"a=" + keyA[:20]:               "want 32",
		"a=" + keyA + ",a=" + keyA:     "listed twice",
		keyA:                           "is not id=key",
		"a=c2hvcnQ=":                   "5 bytes",
		"a=" + keyA + ",b=" + keyB[1:]: "key \"b\"",
	} {
		_, err := encryption.Parse(spec, "")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q): %v, want %q", spec, err, want)
			continue
		}
		if strings.Contains(err.Error(), keyA[:16]) || strings.Contains(err.Error(), keyB[:16]) {
			t.Errorf("Parse(%q) repeats the key: %v", spec, err)
		}
	}
	if _, err := encryption.Parse("a="+keyA, "z"); err == nil {
		t.Error("a current key that is not listed was taken")
	}
}
