package main

// Offline verification (-verify=jwks): the store checks the caller's service-account JWT itself,
// against the cluster's key set (the apiserver's /openid/v1/jwks), with golang-jwt/jwt/v5 for the
// token and MicahParks/keyfunc/v3 (over MicahParks/jwkset) for the key set. See README.md for why
// these and for what the configuration below guards against.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// Algorithms the kube-apiserver signs service-account tokens with (RSA keys: RS256; ECDSA keys:
// ES256/384/512 by curve). Never "none", never HS*: the library refuses any other alg before it
// asks for a key.
var signingAlgorithms = []string{"RS256", "ES256", "ES384", "ES512"}

const (
	leeway          = 5 * time.Second
	maxKeySetBytes  = 1 << 20
	unknownKIDEvery = 10 * time.Second
)

var (
	// errKeySetUnavailable: the token names a key the store does not hold and the key set cannot be
	// fetched now (refused, hanging, garbage): 503, never a grant.
	errKeySetUnavailable = errors.New("key set unavailable")
	// errUnknownKID: the key set was fetched and does not hold the token's kid: 403.
	errUnknownKID = errors.New("unknown kid")
	errNoKID      = errors.New("token header has no kid")
)

type jwksConfig struct {
	issuer       string
	jwksURL      string
	caFile       string
	audience     string
	refresh      time.Duration // KEY_REFRESH_SECONDS: a new key honoured, a retired one dropped, within it
	fetchTimeout time.Duration // one key-set fetch
	unknownKID   time.Duration // at most one refetch for unknown kids per this
}

// keySet is the cluster's key set as last fetched. Periodic refreshes (jwkset's refresh goroutine)
// replace it whole, so a retired key disappears; an unknown kid triggers a refetch at most once per
// cfg.unknownKID (a flood of unknown kids is not forwarded to the API server); a fetch that fails
// keeps the keys held (they keep verifying during an outage).
type keySet struct {
	stored   jwkset.Storage  // the keys held; reading it never fetches
	known    keyfunc.Keyfunc // keys from stored only
	fetching keyfunc.Keyfunc // refetches the set for a kid stored lacks
	limiter  *rate.Limiter   // gates fetching (non-blocking: over the rate the answer is immediate)
	timeout  time.Duration

	mu         sync.Mutex
	lastOK     time.Time
	lastFailed time.Time
}

// heldKeys is jwkset's in-memory storage, noting every successful fetch (jwkset replaces the whole
// set only after a fetch that it could parse) and refusing an empty set: a cluster always publishes
// at least one key, so an empty answer is garbage and must not drop the keys held.
type heldKeys struct {
	*jwkset.MemoryJWKSet
	ks *keySet
}

func (h heldKeys) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	if len(given) == 0 {
		return errors.New("key set holds no usable key")
	}
	if err := h.MemoryJWKSet.KeyReplaceAll(ctx, given); err != nil {
		return err
	}
	kids := make([]string, 0, len(given))
	for _, k := range given {
		kids = append(kids, k.Marshal().KID)
	}
	h.ks.mu.Lock()
	h.ks.lastOK = time.Now()
	h.ks.mu.Unlock()
	logEvent(map[string]any{"event": "key-set-fetched", "kids": kids})
	return nil
}

func (ks *keySet) fetchFailed(_ context.Context, err error) {
	ks.mu.Lock()
	ks.lastFailed = time.Now()
	ks.mu.Unlock()
	logEvent(map[string]any{"event": "key-set-fetch-failed", "error": err.Error()})
}

// available: the last fetch attempt succeeded.
func (ks *keySet) available() bool {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return !ks.lastOK.IsZero() && !ks.lastFailed.After(ks.lastOK)
}

func (ks *keySet) unknown() error {
	if ks.available() {
		return errUnknownKID
	}
	return errKeySetUnavailable
}

// keyfunc for golang-jwt: the key is looked up by the header's kid in the fetched set only; jku,
// x5u, x5c and an embedded jwk are never read.
func (ks *keySet) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		kid, ok := t.Header["kid"].(string)
		if !ok || kid == "" {
			return nil, errNoKID
		}
		if _, err := ks.stored.KeyRead(ctx, kid); err == nil {
			return ks.known.KeyfuncCtx(ctx)(t)
		}
		if !ks.limiter.Allow() {
			return nil, ks.unknown()
		}
		fetchCtx, cancel := context.WithTimeout(ctx, ks.timeout)
		defer cancel()
		key, err := ks.fetching.KeyfuncCtx(fetchCtx)(t)
		if errors.Is(err, jwkset.ErrKeyNotFound) {
			return nil, ks.unknown()
		}
		return key, err
	}
}

// limitedBody caps what one key-set fetch may read.
type limitedBody struct{ base http.RoundTripper }

func (l limitedBody) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(r)
	if err == nil {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(resp.Body, maxKeySetBytes), resp.Body}
	}
	return resp, err
}

func keySetClient(caFile string, timeout time.Duration) (*http.Client, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA_FILE %s holds no PEM certificate", caFile)
		}
		tlsConfig.RootCAs = pool
	}
	transport := &http.Transport{
		TLSClientConfig:       tlsConfig,
		Proxy:                 nil, // the cluster's own endpoint: never through an environment proxy
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          2,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{
		Transport: limitedBody{transport},
		Timeout:   timeout,
		// A redirect is an answer other than 200: a failed fetch, not a key set from elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// newKeySet fetches the key set once (without failing if it cannot: unknown kids then get 503) and
// starts the refresh goroutine, which ends with ctx. It refetches every cfg.refresh/2, so that one
// failed fetch (an apiserver restarting) still leaves another inside cfg.refresh.
func newKeySet(ctx context.Context, cfg jwksConfig) (*keySet, error) {
	u, err := url.Parse(cfg.jwksURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("JWKS_URL=%q is not an https URL", cfg.jwksURL)
	}
	client, err := keySetClient(cfg.caFile, cfg.fetchTimeout)
	if err != nil {
		return nil, err
	}
	ks := &keySet{limiter: rate.NewLimiter(rate.Every(cfg.unknownKID), 1), timeout: cfg.fetchTimeout}
	held := heldKeys{jwkset.NewMemoryStorage(), ks}
	stored, err := jwkset.NewStorageFromHTTP(cfg.jwksURL, jwkset.HTTPClientStorageOptions{
		Client:                    client,
		Ctx:                       ctx,
		HTTPTimeout:               cfg.fetchTimeout,
		NoErrorReturnFirstHTTPReq: true,
		RefreshErrorHandler:       ks.fetchFailed,
		RefreshInterval:           cfg.refresh / 2,
		Storage:                   held,
	})
	if err != nil {
		return nil, err
	}
	fetching, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:         map[string]jwkset.Storage{cfg.jwksURL: stored},
		RateLimitWaitMax: cfg.fetchTimeout,
		// The rate is bounded by ks.limiter, which answers at once instead of making requests wait.
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
	})
	if err != nil {
		return nil, err
	}
	ks.stored = stored
	if ks.known, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: stored}); err != nil {
		return nil, err
	}
	if ks.fetching, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: fetching}); err != nil {
		return nil, err
	}
	return ks, nil
}

// jwksVerifier checks a token against the key set, the issuer and the audience, and names the
// service account it was issued to.
type jwksVerifier struct {
	keys   *keySet
	parser *jwt.Parser
}

func newJWKSVerifier(keys *keySet, issuer, audience string) *jwksVerifier {
	return &jwksVerifier{keys, jwt.NewParser(
		jwt.WithValidMethods(signingAlgorithms),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
	)}
}

type serviceAccountClaims struct {
	jwt.RegisteredClaims
	Kubernetes *struct {
		Namespace      string `json:"namespace"`
		ServiceAccount *struct {
			Name string `json:"name"`
		} `json:"serviceaccount"`
	} `json:"kubernetes.io"`
}

func (v *jwksVerifier) authenticate(ctx context.Context, token string) (string, decision) {
	var claims serviceAccountClaims
	_, err := v.parser.ParseWithClaims(token, &claims, v.keys.keyfunc(ctx))
	switch {
	case errors.Is(err, errKeySetUnavailable):
		return "", decision{http.StatusServiceUnavailable, "key-set-unavailable", ""}
	case errors.Is(err, errUnknownKID):
		return "", decision{http.StatusForbidden, "unknown-kid", ""}
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "", decision{http.StatusForbidden, "malformed", ""}
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "", decision{http.StatusForbidden, "expired-or-not-yet-valid", ""}
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "", decision{http.StatusForbidden, "issuer-mismatch", ""}
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "", decision{http.StatusForbidden, "audience-mismatch", ""}
	case err != nil:
		return "", decision{http.StatusForbidden, "not-authenticated", ""}
	}
	// The subject and the kubernetes.io claim must both name the same service account.
	account, isSA := strings.CutPrefix(claims.Subject, saPrefix)
	ns, name, ok := strings.Cut(account, ":")
	k := claims.Kubernetes
	if !isSA || !ok || ns == "" || name == "" || strings.Contains(name, ":") ||
		k == nil || k.ServiceAccount == nil || k.Namespace != ns || k.ServiceAccount.Name != name {
		return "", decision{http.StatusForbidden, "not-a-service-account", ""}
	}
	return claims.Subject, decision{}
}
