package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// pemFile writes PEM blocks to a file in dir.
func pemFile(t *testing.T, dir, name string, blocks ...*pem.Block) string {
	t.Helper()
	var b []byte
	for _, bl := range blocks {
		b = append(b, pem.EncodeToMemory(bl)...)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// issue makes a certificate signed by parent (self-signed when parent is nil).
func issue(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// The mTLS files of a self-hosted cluster (TEMPORAL_TLS_CERT, _KEY, _CA, _SERVER_NAME) make a client
// configuration that completes a handshake with a server that demands a client certificate from its CA.
func TestTemporalMutualTLS(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, caKey := issue(t, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}, nil, nil)
	serverCert, serverKey := issue(t, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "temporal"}, DNSNames: []string{"temporal.internal"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}, ca, caKey)
	clientCert, clientKey := issue(t, &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "saasengine-worker"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}, ca, caKey)
	keyBlock := func(k *ecdsa.PrivateKey) *pem.Block {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	}

	env := map[string]string{
		"TEMPORAL_TLS_CERT":        pemFile(t, dir, "client.pem", &pem.Block{Type: "CERTIFICATE", Bytes: clientCert.Raw}),
		"TEMPORAL_TLS_KEY":         pemFile(t, dir, "client.key", keyBlock(clientKey)),
		"TEMPORAL_TLS_CA":          pemFile(t, dir, "ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}),
		"TEMPORAL_TLS_SERVER_NAME": "temporal.internal",
	}
	clientTLS, err := TemporalFromEnv(Getenv(func(k string) string { return env[k] })).TLS()
	if err != nil || clientTLS == nil {
		t.Fatalf("client TLS: %v", err)
	}

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{serverCert.Raw}, PrivateKey: serverKey}},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			peer <- err.Error()
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			peer <- err.Error()
			return
		}
		peer <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
	}()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), clientTLS)
	if err != nil {
		t.Fatalf("handshake with the cluster's CA and name: %v", err)
	}
	conn.Close()
	if got := <-peer; got != "saasengine-worker" {
		t.Fatalf("server saw client %q", got)
	}

	// A server name alone still means TLS: never plaintext when the operator asked for a name.
	if cfg, err := TemporalFromEnv(Getenv(func(k string) string {
		return map[string]string{"TEMPORAL_TLS_SERVER_NAME": "temporal.internal"}[k]
	})).TLS(); err != nil || cfg == nil || cfg.ServerName != "temporal.internal" {
		t.Fatalf("server name alone: %+v %v", cfg, err)
	}
	// A certificate without its key is refused.
	delete(env, "TEMPORAL_TLS_KEY")
	if _, err := TemporalFromEnv(Getenv(func(k string) string { return env[k] })).TLS(); err == nil {
		t.Fatal("a certificate without its key was accepted")
	}
}
