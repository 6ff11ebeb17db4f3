package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fakeReviews answers every TokenReview with status (or err) and remembers the last spec.
type fakeReviews struct {
	status authv1.TokenReviewStatus
	err    error
	spec   authv1.TokenReviewSpec
}

func (f *fakeReviews) Create(_ context.Context, r *authv1.TokenReview, _ metav1.CreateOptions) (*authv1.TokenReview, error) {
	f.spec = r.Spec
	if f.err != nil {
		return nil, f.err
	}
	return &authv1.TokenReview{Spec: r.Spec, Status: f.status}, nil
}

func ask(t *testing.T, reviews *fakeReviews, headers map[string][]string) int {
	t.Helper()
	allowed, err := parseAllowList("ns-a:api")
	if err != nil {
		t.Fatal(err)
	}
	s := &store{authn: &tokenReviewer{reviews, "secret-store"}, allowed: allowed, timeout: time.Second}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	for name, values := range headers {
		for _, v := range values {
			req.Header.Add(name, v)
		}
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec.Code
}

const token = "aaa.bbb.ccc"

func ok(username string, audiences ...string) *fakeReviews {
	return &fakeReviews{status: authv1.TokenReviewStatus{
		Authenticated: true, Audiences: audiences, User: authv1.UserInfo{Username: username},
	}}
}

func TestDecisions(t *testing.T) {
	cases := []struct {
		name    string
		reviews *fakeReviews
		headers map[string][]string
		want    int
	}{
		{"allowed", ok("system:serviceaccount:ns-a:api", "secret-store"), map[string][]string{"X-Client-Id": {token}}, 200},
		{"lowercase header", ok("system:serviceaccount:ns-a:api", "secret-store"), map[string][]string{"x-client-id": {token}}, 200},
		{"no header", ok("system:serviceaccount:ns-a:api", "secret-store"), nil, 401},
		{"repeated header", ok("system:serviceaccount:ns-a:api", "secret-store"), map[string][]string{"X-Client-Id": {token, token}}, 403},
		{"not a JWT", ok("system:serviceaccount:ns-a:api", "secret-store"), map[string][]string{"X-Client-Id": {"garbage"}}, 403},
		{"other audience", ok("system:serviceaccount:ns-a:api", "other"), map[string][]string{"X-Client-Id": {token}}, 403},
		{"same name, other namespace", ok("system:serviceaccount:ns-b:api", "secret-store"), map[string][]string{"X-Client-Id": {token}}, 403},
		{"other name, same namespace", ok("system:serviceaccount:ns-a:other", "secret-store"), map[string][]string{"X-Client-Id": {token}}, 403},
		{"not a service account", ok("admin", "secret-store"), map[string][]string{"X-Client-Id": {token}}, 403},
		{"refused", &fakeReviews{status: authv1.TokenReviewStatus{Error: "expired"}}, map[string][]string{"X-Client-Id": {token}}, 403},
		{"review fails", &fakeReviews{err: errors.New("500 from the API")}, map[string][]string{"X-Client-Id": {token}}, 503},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ask(t, c.reviews, c.headers); got != c.want {
				t.Fatalf("status %d, want %d", got, c.want)
			}
		})
	}
}

func TestReviewAsksForItsAudience(t *testing.T) {
	reviews := ok("system:serviceaccount:ns-a:api", "secret-store")
	ask(t, reviews, map[string][]string{"X-Client-Id": {token}})
	if len(reviews.spec.Audiences) != 1 || reviews.spec.Audiences[0] != "secret-store" || reviews.spec.Token != token {
		t.Fatalf("review spec %+v", reviews.spec)
	}
}

func TestAllowListNeedsEntries(t *testing.T) {
	for _, raw := range []string{"", " , ", "api", "ns:", ":api", "ns:a:b"} {
		if _, err := parseAllowList(raw); err == nil {
			t.Errorf("%q accepted", raw)
		}
	}
}

// ---- -verify=jwks: offline verification against the cluster's key set ----

const (
	testIssuer   = "https://kubernetes.default.svc.cluster.local"
	testAudience = "secret-store"
)

// testKey is a signing key made in the test: its kid, algorithm and private key.
type testKey struct {
	kid    string
	method jwt.SigningMethod
	key    crypto.Signer
}

func rsaKey(t *testing.T, kid string) testKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid, jwt.SigningMethodRS256, k}
}

func ecKey(t *testing.T, kid string) testKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid, jwt.SigningMethodES256, k}
}

// jwk is the public half as the apiserver publishes it at /openid/v1/jwks.
func (k testKey) jwk(t *testing.T) map[string]any {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	switch pub := k.key.Public().(type) {
	case *rsa.PublicKey:
		return map[string]any{"use": "sig", "kty": "RSA", "kid": k.kid, "alg": "RS256",
			"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes())}
	case *ecdsa.PublicKey:
		raw, err := pub.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return map[string]any{"use": "sig", "kty": "EC", "kid": k.kid, "alg": "ES256", "crv": "P-256",
			"x": b64(raw[1:33]), "y": b64(raw[33:])}
	}
	t.Fatalf("key type %T", k.key)
	return nil
}

func claimsFor(ns, name string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": testIssuer,
		"sub": "system:serviceaccount:" + ns + ":" + name,
		"aud": []string{testAudience},
		"exp": now.Add(time.Hour).Unix(),
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"jti": "7d0c1f9e",
		"kubernetes.io": map[string]any{
			"namespace":      ns,
			"serviceaccount": map[string]any{"name": name, "uid": "0b4d4f5e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"},
		},
	}
}

// mint signs claims (the allowed caller's unless edit changes them) with k, the kid in the header.
func mint(t *testing.T, k testKey, edit func(claims jwt.MapClaims, header map[string]any)) string {
	t.Helper()
	claims := claimsFor("ns-a", "api")
	tok := jwt.NewWithClaims(k.method, claims)
	tok.Header["kid"] = k.kid
	if edit != nil {
		edit(claims, tok.Header)
	}
	signed, err := tok.SignedString(k.key)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// jwksServer serves a key set over TLS and counts fetches; mode switches it to an outage.
type jwksServer struct {
	srv     *httptest.Server
	caFile  string
	fetches atomic.Int64
	release chan struct{}

	mu   sync.Mutex
	keys []map[string]any
	mode string // "ok", "hang", "garbage", "empty", "error"
}

func newJWKSServer(t *testing.T, keys ...testKey) *jwksServer {
	t.Helper()
	j := &jwksServer{release: make(chan struct{}), mode: "ok"}
	j.set(t, keys...)
	j.srv = httptest.NewTLSServer(http.HandlerFunc(j.serve))
	t.Cleanup(func() {
		close(j.release)
		j.srv.Close()
	})
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: j.srv.Certificate().Raw})
	j.caFile = filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(j.caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return j
}

func (j *jwksServer) set(t *testing.T, keys ...testKey) {
	t.Helper()
	published := make([]map[string]any, 0, len(keys))
	for _, k := range keys {
		published = append(published, k.jwk(t))
	}
	j.mu.Lock()
	j.keys = published
	j.mu.Unlock()
}

func (j *jwksServer) setMode(mode string) {
	j.mu.Lock()
	j.mode = mode
	j.mu.Unlock()
}

func (j *jwksServer) serve(w http.ResponseWriter, r *http.Request) {
	j.fetches.Add(1)
	j.mu.Lock()
	mode, keys := j.mode, j.keys
	j.mu.Unlock()
	switch mode {
	case "hang":
		select {
		case <-r.Context().Done():
		case <-j.release:
		}
	case "garbage":
		_, _ = w.Write([]byte("<html>not a key set</html>"))
	case "empty":
		_, _ = w.Write([]byte(`{"keys":[]}`))
	case "error":
		http.Error(w, "etcdserver: leader changed", http.StatusInternalServerError)
	default:
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	}
}

type jwksOptions struct {
	refresh, fetchTimeout, unknownKID time.Duration
}

// jwksStore is the store in -verify=jwks mode against j (refresh 1 h, fetch timeout 1 s and one
// unknown-kid refetch per 10 s unless opts say otherwise).
func jwksTestStore(t *testing.T, j *jwksServer, opts jwksOptions) (*store, *keySet) {
	t.Helper()
	if opts.refresh == 0 {
		opts.refresh = time.Hour
	}
	if opts.fetchTimeout == 0 {
		opts.fetchTimeout = time.Second
	}
	if opts.unknownKID == 0 {
		opts.unknownKID = unknownKIDEvery
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	keys, err := newKeySet(ctx, jwksConfig{
		issuer: testIssuer, jwksURL: j.srv.URL + "/openid/v1/jwks", caFile: j.caFile, audience: testAudience,
		refresh: opts.refresh, fetchTimeout: opts.fetchTimeout, unknownKID: opts.unknownKID,
	})
	if err != nil {
		t.Fatal(err)
	}
	allowed, err := parseAllowList("ns-a:api")
	if err != nil {
		t.Fatal(err)
	}
	return &store{
		authn: newJWKSVerifier(keys, testIssuer, testAudience), allowed: allowed,
		timeout: opts.fetchTimeout + time.Second, unavailable: bodyKeysUnavailable,
	}, keys
}

func present(s *store, token string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("X-Client-Id", token)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// eventually asks until the status is want (or the deadline): what a caller sees over time.
func eventually(t *testing.T, s *store, token string, want int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got, _ := present(s, token)
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("status %d, want %d within %s", got, want, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestJWKSDecisions(t *testing.T) {
	key, ec := rsaKey(t, "cluster-rsa"), ecKey(t, "cluster-ec")
	attacker := rsaKey(t, "attacker")
	j := newJWKSServer(t, key, ec)
	// The attacker's own key-set server: a header naming it must never be followed.
	evil := newJWKSServer(t, attacker)
	s, _ := jwksTestStore(t, j, jwksOptions{})
	hs := testKey{"cluster-rsa", jwt.SigningMethodHS256, nil}
	rsaPub, _ := x509.MarshalPKIXPublicKey(key.key.Public())
	publicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPub})
	hsToken := func(edit func(jwt.MapClaims, map[string]any)) string {
		tok := jwt.NewWithClaims(hs.method, claimsFor("ns-a", "api"))
		tok.Header["kid"] = hs.kid
		signed, err := tok.SignedString(publicPEM) // the classic RS256 -> HS256 key confusion
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	noneToken := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, claimsFor("ns-a", "api"))
		tok.Header["kid"] = key.kid
		signed, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	headerKeys := func(kid string) func(jwt.MapClaims, map[string]any) {
		return func(_ jwt.MapClaims, h map[string]any) {
			h["kid"] = kid
			h["jku"] = evil.srv.URL + "/jwks"
			h["x5u"] = evil.srv.URL + "/cert.pem"
			h["jwk"] = attacker.jwk(t)
		}
	}
	set := func(name string, value any) func(jwt.MapClaims, map[string]any) {
		return func(c jwt.MapClaims, _ map[string]any) {
			if value == nil {
				delete(c, name)
			} else {
				c[name] = value
			}
		}
	}
	now := time.Now()
	cases := []struct {
		name  string
		token string
		want  int
	}{
		{"RS256 token of the allowed caller", mint(t, key, nil), 200},
		{"ES256 token of the allowed caller", mint(t, ec, nil), 200},
		{"other issuer", mint(t, key, set("iss", "https://evil.example")), 403},
		{"issuer with a trailing slash", mint(t, key, set("iss", testIssuer+"/")), 403},
		{"no issuer", mint(t, key, set("iss", nil)), 403},
		{"other audience", mint(t, key, set("aud", []string{"other"})), 403},
		{"no audience", mint(t, key, set("aud", nil)), 403},
		{"audience among others", mint(t, key, set("aud", []string{"other", testAudience})), 200},
		{"expired", mint(t, key, set("exp", now.Add(-time.Minute).Unix())), 403},
		{"expired within the leeway", mint(t, key, set("exp", now.Add(-2*time.Second).Unix())), 200},
		{"no exp", mint(t, key, set("exp", nil)), 403},
		{"not yet valid", mint(t, key, set("nbf", now.Add(time.Minute).Unix())), 403},
		{"issued in the future", mint(t, key, set("iat", now.Add(time.Minute).Unix())), 403},
		{"alg none", noneToken(), 403},
		{"HS256 keyed with the public key", hsToken(nil), 403},
		{"jku/x5u/jwk header keys, attacker kid", mint(t, attacker, headerKeys("attacker")), 403},
		{"jku/x5u/jwk header keys, cluster kid", mint(t, attacker, headerKeys(key.kid)), 403},
		{"unknown kid", mint(t, attacker, nil), 403},
		{"no kid", mint(t, key, func(_ jwt.MapClaims, h map[string]any) { delete(h, "kid") }), 403},
		{"kid of the EC key on an RS256 token", mint(t, key, func(_ jwt.MapClaims, h map[string]any) { h["kid"] = ec.kid }), 403},
		{"same name, other namespace", mint(t, key, func(c jwt.MapClaims, _ map[string]any) {
			for k, v := range claimsFor("ns-b", "api") {
				c[k] = v
			}
		}), 403},
		{"other name, same namespace", mint(t, key, func(c jwt.MapClaims, _ map[string]any) {
			for k, v := range claimsFor("ns-a", "other") {
				c[k] = v
			}
		}), 403},
		{"sub and kubernetes.io disagree", mint(t, key, set("sub", "system:serviceaccount:ns-a:api-x")), 403},
		{"sub with an extra part", mint(t, key, set("sub", "system:serviceaccount:ns-a:api:x")), 403},
		{"no kubernetes.io claim", mint(t, key, set("kubernetes.io", nil)), 403},
		{"not a service account", mint(t, key, set("sub", "admin")), 403},
		{"signature of another key", func() string {
			good := mint(t, key, nil)
			other := mint(t, attacker, func(_ jwt.MapClaims, h map[string]any) { h["kid"] = key.kid })
			return good[:strings.LastIndex(good, ".")] + other[strings.LastIndex(other, "."):]
		}(), 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, _ := present(s, c.token); got != c.want {
				t.Fatalf("status %d, want %d", got, c.want)
			}
		})
	}
	if n := evil.fetches.Load(); n != 0 {
		t.Fatalf("the attacker's key-set server was asked %d times", n)
	}
	// Same HTTP semantics as TokenReview mode.
	for _, c := range []struct {
		headers map[string][]string
		want    int
	}{
		{nil, 401},
		{map[string][]string{"X-Client-Id": {""}}, 403},
		{map[string][]string{"X-Client-Id": {"garbage"}}, 403},
		{map[string][]string{"X-Client-Id": {mint(t, key, nil), mint(t, key, nil)}}, 403},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		for name, values := range c.headers {
			for _, v := range values {
				req.Header.Add(name, v)
			}
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("headers %v: status %d, want %d", c.headers, rec.Code, c.want)
		}
	}
}

func TestJWKSKeyRotation(t *testing.T) {
	oldKey, newKey := rsaKey(t, "old"), rsaKey(t, "new")
	j := newJWKSServer(t, oldKey)
	s, _ := jwksTestStore(t, j, jwksOptions{refresh: time.Second, unknownKID: 200 * time.Millisecond})
	oldToken, newToken := mint(t, oldKey, nil), mint(t, newKey, nil)
	if got, _ := present(s, oldToken); got != 200 {
		t.Fatalf("old key before the rotation: %d", got)
	}
	if got, _ := present(s, newToken); got != 403 {
		t.Fatalf("a key the set does not publish yet: %d", got)
	}
	// The overlap: both published; the unknown kid is fetched (the limiter allows one per 200 ms).
	j.set(t, oldKey, newKey)
	took := eventually(t, s, newToken, 200, 2*time.Second)
	t.Logf("new key honoured after %s", took)
	if got, _ := present(s, oldToken); got != 200 {
		t.Fatalf("old key during the overlap: %d", got)
	}
	// Retired: the periodic refresh (every refresh/2) drops it.
	j.set(t, newKey)
	took = eventually(t, s, oldToken, 403, 2*time.Second)
	t.Logf("retired key refused after %s", took)
	if got, _ := present(s, newToken); got != 200 {
		t.Fatalf("new key after the retirement: %d", got)
	}
}

func TestJWKSUnknownKIDFloodIsBounded(t *testing.T) {
	key := rsaKey(t, "cluster")
	j := newJWKSServer(t, key)
	s, _ := jwksTestStore(t, j, jwksOptions{})
	before := j.fetches.Load()
	attacker := rsaKey(t, "x")
	var wg sync.WaitGroup
	statuses := make([]int, 100)
	start := time.Now()
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := attacker
			k.kid = fmt.Sprintf("unknown-%d", i)
			statuses[i], _ = present(s, mint(t, k, nil))
		}()
	}
	wg.Wait()
	for i, st := range statuses {
		if st != 403 {
			t.Errorf("token %d: status %d, want 403", i, st)
		}
	}
	fetched := j.fetches.Load() - before
	t.Logf("100 unknown kids: %d key-set fetches in %s", fetched, time.Since(start))
	if fetched > 1 {
		t.Fatalf("100 unknown kids caused %d key-set fetches, want at most 1 per %s", fetched, unknownKIDEvery)
	}
	if got, _ := present(s, mint(t, key, nil)); got != 200 {
		t.Fatalf("a known key after the flood: %d", got)
	}
}

func TestJWKSOutage(t *testing.T) {
	for _, mode := range []string{"refused", "hang", "garbage", "empty", "error"} {
		t.Run(mode, func(t *testing.T) {
			key, next := rsaKey(t, "cluster"), rsaKey(t, "next")
			j := newJWKSServer(t, key)
			s, keys := jwksTestStore(t, j, jwksOptions{refresh: 400 * time.Millisecond, unknownKID: 100 * time.Millisecond})
			known, unknown := mint(t, key, nil), mint(t, next, nil)
			if mode == "refused" {
				j.srv.Close()
			} else {
				j.setMode(mode)
			}
			time.Sleep(1500 * time.Millisecond) // periodic refreshes fail meanwhile: the held key stays
			start := time.Now()
			if got, _ := present(s, known); got != 200 {
				t.Fatalf("a known key during the outage: %d", got)
			}
			if took := time.Since(start); took > 100*time.Millisecond {
				t.Fatalf("a known key took %s during the outage", took)
			}
			for i := 0; i < 3; i++ {
				start = time.Now()
				got, body := present(s, unknown)
				took := time.Since(start)
				if got != 503 || body != bodyKeysUnavailable {
					t.Fatalf("unknown kid during the outage: %d %q, want 503", got, body)
				}
				if took > 2*time.Second { // fetch timeout 1 s
					t.Fatalf("the decision took %s", took)
				}
				time.Sleep(150 * time.Millisecond)
			}
			if keys.available() {
				t.Fatal("the key set counts as available during the outage")
			}
			if mode == "refused" {
				return
			}
			// Recovery, by itself: the endpoint answers again, the new key is published.
			j.set(t, key, next)
			j.setMode("ok")
			eventually(t, s, unknown, 200, 3*time.Second)
			if got, _ := present(s, known); got != 200 {
				t.Fatalf("known key after recovery: %d", got)
			}
		})
	}
}

func TestJWKSStartsWhileTheKeySetIsUnreachable(t *testing.T) {
	key := rsaKey(t, "cluster")
	j := newJWKSServer(t, key)
	j.setMode("hang")
	start := time.Now()
	s, _ := jwksTestStore(t, j, jwksOptions{refresh: time.Hour, unknownKID: 100 * time.Millisecond})
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("start took %s", took)
	}
	if got, _ := present(s, mint(t, key, nil)); got != 503 {
		t.Fatalf("no key set yet: %d, want 503", got)
	}
	j.setMode("ok")
	eventually(t, s, mint(t, key, nil), 200, 3*time.Second)
}

func TestJWKSConfig(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, u := range []string{"http://127.0.0.1:6443/openid/v1/jwks", "127.0.0.1:6443", "https://"} {
		if _, err := newKeySet(ctx, jwksConfig{jwksURL: u, refresh: time.Minute, fetchTimeout: time.Second, unknownKID: time.Second}); err == nil {
			t.Errorf("JWKS_URL %q accepted", u)
		}
	}
	for _, c := range []struct {
		args []string
		env  string
		want string
	}{
		{nil, "", "tokenreview"},
		{nil, "jwks", "jwks"},
		{[]string{"-verify=jwks"}, "", "jwks"},
		{[]string{"-verify=tokenreview"}, "jwks", "tokenreview"},
		{[]string{"-verify", "jwks"}, "", "jwks"},
	} {
		t.Setenv("VERIFY", c.env)
		if got, err := verificationMode(c.args); err != nil || got != c.want {
			t.Errorf("%v VERIFY=%q: %q %v, want %q", c.args, c.env, got, err, c.want)
		}
	}
	for _, args := range [][]string{{"-verify=offline"}, {"extra"}} {
		if _, err := verificationMode(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
