package server_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"saasengine/encryption"
	"saasengine/internal/stacktest"
	"saasengine/webhook/server"
)

// The codec endpoint encrypts and decrypts for Temporal's UI and CLI: a payload encoded then decoded
// comes back whole; a browser preflight is answered for the UI's origin only.
func TestCodecEndpoint(t *testing.T) {
	codec, err := encryption.Parse("k=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "")
	if err != nil {
		t.Fatal(err)
	}
	const pathKey = "a-path-key-that-is-long-enough-to-guard-it"
	const ui = "http://127.0.0.1:8233"
	s := stacktest.Start(t, stacktest.Options{NoWorker: true, ConfigureServer: func(c *server.Config) {
		c.Codec, c.CodecPathKey, c.CodecOrigins = codec, pathKey, []string{ui}
	}})
	call := func(method, path, origin string, body []byte) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, s.HTTP.URL+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp, b.Bytes()
	}

	plain, _ := protojson.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"ada@fabrikam.example"`)}}})
	resp, enc := call("POST", "/codec/"+pathKey+"/encode", ui, plain)
	if resp.StatusCode != 200 || bytes.Contains(enc, []byte("fabrikam")) || resp.Header.Get("Access-Control-Allow-Origin") != ui {
		t.Fatalf("encode: %d %s (CORS %q)", resp.StatusCode, enc, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	resp, dec := call("POST", "/codec/"+pathKey+"/decode", ui, enc)
	var back commonpb.Payloads
	if resp.StatusCode != 200 || protojson.Unmarshal(dec, &back) != nil || len(back.Payloads) != 1 || string(back.Payloads[0].Data) != `"ada@fabrikam.example"` {
		t.Fatalf("decode: %d %s", resp.StatusCode, dec)
	}

	resp, _ = call("OPTIONS", "/codec/"+pathKey+"/decode", ui, nil)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != ui || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "X-Namespace") {
		t.Errorf("the UI's preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = call("OPTIONS", "/codec/"+pathKey+"/decode", "https://evil.example", nil)
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("another origin was allowed: %v", resp.Header)
	}
	if resp, _ = call("POST", "/codec/decode", "", enc); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("decode without the admin token: %d", resp.StatusCode)
	}
	if resp, _ = call("POST", "/codec/"+strings.Repeat("x", len(pathKey))+"/decode", "", enc); resp.StatusCode != http.StatusNotFound {
		t.Errorf("decode at a wrong path key: %d", resp.StatusCode)
	}
}
