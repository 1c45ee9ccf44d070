package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/tlstest"
)

// TestTLSMovesTheAPIToHTTPSAndKeepsBootPathsPlain: with --tls-cert the API answers on
// --api-addr over HTTPS only; the plain listener serves what machines boot from, refuses the
// API (403, no redirect, whatever token) and sends other reads (the UI) to HTTPS.
func TestTLSMovesTheAPIToHTTPSAndKeepsBootPathsPlain(t *testing.T) {
	cfg := testConfig(t)
	certFile, keyFile, cert := tlstest.WriteSelfSigned(t, t.TempDir(), "fleetboot-test")
	cfg.TLSCert, cfg.TLSKey, cfg.APIAddr = certFile, keyFile, freePort(t)
	cfg.Token = "admin-token-0123456789"
	var logs lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil))) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	if code, _ := getWhenUp(t, "http://"+cfg.HTTPAddr+"/healthz", done, &logs); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	https := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	plain := &http.Client{CheckRedirect: https.CheckRedirect}
	get := func(c *http.Client, url, token string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v\n%s", url, err, logs.String())
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	if res, b := get(https, "https://"+cfg.APIAddr+"/api/v1/whoami", cfg.Token); res.StatusCode != 200 || !strings.Contains(b, `"admin"`) {
		t.Fatalf("HTTPS API: %d %s", res.StatusCode, b)
	}
	if res, b := get(https, "https://"+cfg.APIAddr+"/boot.ipxe", ""); res.StatusCode != 200 || !strings.HasPrefix(b, "#!ipxe") {
		t.Fatalf("HTTPS boot script: %d %s", res.StatusCode, b)
	}
	for _, p := range []string{"/boot.ipxe", "/ipxe/undionly.kpxe", "/healthz", "/metrics"} {
		if res, _ := get(plain, "http://"+cfg.HTTPAddr+p, ""); res.StatusCode != 200 {
			t.Errorf("plain %s: %d, want 200", p, res.StatusCode)
		}
	}
	res, b := get(plain, "http://"+cfg.HTTPAddr+"/api/v1/whoami", cfg.Token)
	if res.StatusCode != http.StatusForbidden || !strings.Contains(b, "https://127.0.0.1:") || res.Header.Get("Location") != "" {
		t.Fatalf("plain API: %d Location=%q %s", res.StatusCode, res.Header.Get("Location"), b)
	}
	res, _ = get(plain, "http://"+cfg.HTTPAddr+"/ui/machines?x=1", "")
	_, apiPort, _ := net.SplitHostPort(cfg.APIAddr)
	if res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != "https://127.0.0.1:"+apiPort+"/ui/machines?x=1" {
		t.Fatalf("plain UI read: %d Location=%q", res.StatusCode, res.Header.Get("Location"))
	}
	// The plain listener is not TLS, the TLS listener is not plain.
	if _, err := plain.Get("http://" + cfg.APIAddr + "/healthz"); err == nil {
		if res, _ := get(plain, "http://"+cfg.APIAddr+"/healthz", ""); res.StatusCode == 200 {
			t.Fatal("the HTTPS port answered plain HTTP with 200")
		}
	}
	if !strings.Contains(logs.String(), "api=https://") {
		t.Errorf("the serving line does not name the HTTPS API:\n%s", logs.String())
	}
}

// TestCertReloaderPicksUpARenewedCertificate: a new pair written over the files is served
// without a restart; a half-written pair keeps the old one.
func TestCertReloaderPicksUpARenewedCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := tlstest.WriteSelfSigned(t, dir, "first")
	r, err := newCertReloader(certFile, keyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.checkEvery = 0
	cn := func() string {
		c, err := r.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		x, _ := x509.ParseCertificate(c.Certificate[0])
		return x.Subject.CommonName
	}
	if cn() != "first" {
		t.Fatal("first")
	}
	// Half-written: a new certificate with the old key does not load; the old pair stays.
	other := t.TempDir()
	newCert, newKey, _ := tlstest.WriteSelfSigned(t, other, "second")
	b, _ := os.ReadFile(newCert)
	later := time.Now().Add(time.Minute)
	os.WriteFile(certFile, b, 0o644)
	os.Chtimes(certFile, later, later)
	if cn() != "first" {
		t.Fatal("a mismatched pair replaced the certificate")
	}
	k, _ := os.ReadFile(newKey)
	os.WriteFile(keyFile, k, 0o600)
	os.Chtimes(keyFile, later, later)
	if cn() != "second" {
		t.Fatal("the renewed certificate was not picked up")
	}
}
