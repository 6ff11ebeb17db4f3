// Command secret-store is a small secret store written against client-go, as a team outside this
// project would write one: a caller sends its projected service-account token in X-Client-Id, the
// store asks the TokenReview API whether the token is valid for the store's own audience, then checks
// the caller's service account against an explicit allow-list.
//
// It fails closed: no header is 401, a refused token 403, and a TokenReview that cannot be made
// (API down, no system:auth-delegator, timeout) is 503, never 200. Bodies are generic and the token
// is never logged.
//
// Environment:
//
//	LISTEN_ADDR               host:port to listen on (default ":8081")
//	ALLOWED_SERVICE_ACCOUNTS  required: comma list of namespace:name
//	AUDIENCE                  the audience tokens must be issued for (default "secret-store")
//	REVIEW_TIMEOUT_SECONDS    timeout of one TokenReview (default 5)
//	KUBECONFIG                a kubeconfig to use (outside a pod); else rest.InClusterConfig()
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	header          = "X-Client-Id"
	saPrefix        = "system:serviceaccount:"
	maxTokenBytes   = 16384
	bodyGranted     = "Hello from secret store. You have been authenticated"
	bodyNoHeader    = "X-Client-Id header required"
	bodyDenied      = "permission denied"
	bodyUnavailable = "token review unavailable"
	// jwks mode: the token names a key the store does not hold and the key set cannot be fetched.
	bodyKeysUnavailable = "key set unavailable"
)

// allowList holds "namespace:name" entries; both parts must match.
type allowList map[string]bool

func parseAllowList(raw string) (allowList, error) {
	allowed := allowList{}
	for _, entry := range strings.Split(raw, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		ns, name, ok := strings.Cut(entry, ":")
		if !ok || ns == "" || name == "" || strings.Contains(name, ":") {
			return nil, fmt.Errorf("ALLOWED_SERVICE_ACCOUNTS entry %q is not namespace:name", entry)
		}
		allowed[ns+":"+name] = true
	}
	if len(allowed) == 0 {
		return nil, errors.New("ALLOWED_SERVICE_ACCOUNTS is not set: give a comma list of namespace:name")
	}
	return allowed, nil
}

// reviewer is the part of the TokenReview client the store uses (an interface so a test can fake it).
type reviewer interface {
	Create(ctx context.Context, review *authv1.TokenReview, opts metav1.CreateOptions) (*authv1.TokenReview, error)
}

// authenticator names the caller's service account ("system:serviceaccount:<ns>:<name>") or
// returns the refusal (its status and reason): TokenReview or the offline JWKS verifier.
type authenticator interface {
	authenticate(ctx context.Context, token string) (string, decision)
}

type store struct {
	authn   authenticator
	allowed allowList
	timeout time.Duration
	// the 503 body (default bodyUnavailable)
	unavailable string
}

type decision struct {
	status   int
	reason   string
	username string
}

func (s *store) decide(r *http.Request) decision {
	// Header names are case-insensitive: net/http canonicalises them.
	values := r.Header.Values(header)
	switch {
	case len(values) == 0:
		return decision{http.StatusUnauthorized, "missing-header", ""}
	case len(values) > 1:
		return decision{http.StatusForbidden, "repeated-header", ""}
	}
	token := strings.TrimSpace(values[0])
	if token == "" || len(token) > maxTokenBytes || strings.Count(token, ".") != 2 {
		return decision{http.StatusForbidden, "malformed", ""}
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
	defer cancel()
	username, refused := s.authn.authenticate(ctx, token)
	if refused.status != 0 {
		return refused
	}
	account, isSA := strings.CutPrefix(username, saPrefix)
	ns, name, ok := strings.Cut(account, ":")
	if !isSA || !ok || ns == "" || name == "" || strings.Contains(name, ":") || !s.allowed[ns+":"+name] {
		return decision{http.StatusForbidden, "not-allowed", username}
	}
	return decision{http.StatusOK, "allowed", username}
}

// tokenReviewer asks the TokenReview API, for the store's own audience.
type tokenReviewer struct {
	reviews  reviewer
	audience string
}

func (t *tokenReviewer) authenticate(ctx context.Context, token string) (string, decision) {
	review, err := t.reviews.Create(ctx, &authv1.TokenReview{
		Spec: authv1.TokenReviewSpec{Token: token, Audiences: []string{t.audience}},
	}, metav1.CreateOptions{})
	if err != nil || review == nil {
		// Fail closed: whatever went wrong (refused, forbidden, timeout, 5xx), nobody is let in.
		return "", decision{http.StatusServiceUnavailable, "review-failed", ""}
	}
	st := review.Status
	if !st.Authenticated || st.Error != "" {
		return "", decision{http.StatusForbidden, "not-authenticated", ""}
	}
	audienceOK := false
	for _, aud := range st.Audiences {
		audienceOK = audienceOK || aud == t.audience
	}
	if !audienceOK {
		return "", decision{http.StatusForbidden, "audience-mismatch", st.User.Username}
	}
	return st.User.Username, decision{}
}

func (s *store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		write(w, http.StatusOK, "ok")
		return
	}
	d := s.decide(r)
	logEvent(map[string]any{"event": "decision", "status": d.status, "reason": d.reason, "username": d.username})
	body := map[int]string{
		http.StatusOK:                 bodyGranted,
		http.StatusUnauthorized:       bodyNoHeader,
		http.StatusForbidden:          bodyDenied,
		http.StatusServiceUnavailable: bodyUnavailable,
	}[d.status]
	if d.status == http.StatusServiceUnavailable && s.unavailable != "" {
		body = s.unavailable
	}
	write(w, d.status, body)
}

func write(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func logEvent(fields map[string]any) {
	fields["service"] = "go-secret-store"
	fields["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	line, _ := json.Marshal(fields)
	fmt.Fprintln(os.Stderr, string(line))
}

// restConfig: a kubeconfig when KUBECONFIG names one (a process outside the cluster), else the pod's
// own service account (rest.InClusterConfig).
func restConfig() (*rest.Config, string, error) {
	if path := os.Getenv("KUBECONFIG"); path != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		return cfg, "kubeconfig", err
	}
	cfg, err := rest.InClusterConfig()
	return cfg, "in-cluster", err
}

// seconds reads an environment variable holding seconds in (0, max], or def when it is unset.
func seconds(name string, def, max float64) (time.Duration, error) {
	value := def
	if raw := os.Getenv(name); raw != "" {
		parsed, err := strconv.ParseFloat(raw, 64)
		if err != nil || parsed <= 0 || parsed > max {
			return 0, fmt.Errorf("%s=%q is not a number of seconds in (0, %g]", name, raw, max)
		}
		value = parsed
	}
	return time.Duration(value * float64(time.Second)), nil
}

// verificationMode: the -verify flag when given, else $VERIFY, else tokenreview.
func verificationMode(args []string) (string, error) {
	flags := flag.NewFlagSet("secret-store", flag.ContinueOnError)
	verify := flags.String("verify", "", "tokenreview (ask the TokenReview API) or jwks (verify offline against the cluster's key set); default $VERIFY, else tokenreview")
	if err := flags.Parse(args); err != nil {
		return "", err
	}
	if flags.NArg() > 0 {
		return "", fmt.Errorf("unexpected arguments %q", flags.Args())
	}
	mode := *verify
	if mode == "" {
		mode = os.Getenv("VERIFY")
	}
	switch mode {
	case "", "tokenreview":
		return "tokenreview", nil
	case "jwks":
		return "jwks", nil
	}
	return "", fmt.Errorf("-verify/VERIFY=%q: want tokenreview or jwks", mode)
}

func tokenReviewStore(audience string, allowed allowList) (*store, map[string]any, error) {
	timeout, err := seconds("REVIEW_TIMEOUT_SECONDS", 5, 300)
	if err != nil {
		return nil, nil, err
	}
	cfg, source, err := restConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("no Kubernetes API credentials (%s): %w", source, err)
	}
	cfg.Timeout = timeout
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	s := &store{authn: &tokenReviewer{client.AuthenticationV1().TokenReviews(), audience}, allowed: allowed, timeout: timeout}
	return s, map[string]any{"api_credentials": source}, nil
}

func jwksStore(ctx context.Context, audience string, allowed allowList) (*store, map[string]any, error) {
	cfg := jwksConfig{
		issuer:     os.Getenv("ISSUER_URL"),
		jwksURL:    os.Getenv("JWKS_URL"),
		caFile:     os.Getenv("CA_FILE"),
		audience:   audience,
		unknownKID: unknownKIDEvery,
	}
	if cfg.issuer == "" || cfg.jwksURL == "" {
		return nil, nil, errors.New("-verify=jwks needs ISSUER_URL (the iss every token carries) and JWKS_URL (https)")
	}
	var err error
	if cfg.refresh, err = seconds("KEY_REFRESH_SECONDS", 60, 3600); err != nil {
		return nil, nil, err
	}
	if cfg.fetchTimeout, err = seconds("KEY_FETCH_TIMEOUT_SECONDS", 5, 10); err != nil {
		return nil, nil, err
	}
	keys, err := newKeySet(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	s := &store{
		authn:       newJWKSVerifier(keys, cfg.issuer, audience),
		allowed:     allowed,
		timeout:     cfg.fetchTimeout + time.Second,
		unavailable: bodyKeysUnavailable,
	}
	return s, map[string]any{
		"issuer": cfg.issuer, "jwks_url": cfg.jwksURL, "ca_file": cfg.caFile,
		"key_refresh_seconds": cfg.refresh.Seconds(), "key_set_available": keys.available(),
	}, nil
}

func run(args []string) error {
	mode, err := verificationMode(args)
	if err != nil {
		return err
	}
	allowed, err := parseAllowList(os.Getenv("ALLOWED_SERVICE_ACCOUNTS"))
	if err != nil {
		return err
	}
	audience := os.Getenv("AUDIENCE")
	if audience == "" {
		audience = "secret-store"
	}
	listen := os.Getenv("LISTEN_ADDR")
	if listen == "" {
		listen = ":8081"
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var s *store
	var details map[string]any
	if mode == "jwks" {
		s, details, err = jwksStore(ctx, audience, allowed)
	} else {
		s, details, err = tokenReviewStore(audience, allowed)
	}
	if err != nil {
		return err
	}
	server := &http.Server{
		Addr:              listen,
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdown)
	}()
	details["event"], details["addr"], details["audience"], details["verification"] = "listening", listen, audience, mode
	logEvent(details)
	if err := server.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		logEvent(map[string]any{"event": "fatal", "error": err.Error()})
		os.Exit(2)
	}
}
