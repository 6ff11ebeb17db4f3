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

type store struct {
	reviews  reviewer
	audience string
	allowed  allowList
	timeout  time.Duration
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
	review, err := s.reviews.Create(ctx, &authv1.TokenReview{
		Spec: authv1.TokenReviewSpec{Token: token, Audiences: []string{s.audience}},
	}, metav1.CreateOptions{})
	if err != nil || review == nil {
		// Fail closed: whatever went wrong (refused, forbidden, timeout, 5xx), nobody is let in.
		return decision{http.StatusServiceUnavailable, "review-failed", ""}
	}
	st := review.Status
	if !st.Authenticated || st.Error != "" {
		return decision{http.StatusForbidden, "not-authenticated", ""}
	}
	audienceOK := false
	for _, aud := range st.Audiences {
		audienceOK = audienceOK || aud == s.audience
	}
	if !audienceOK {
		return decision{http.StatusForbidden, "audience-mismatch", st.User.Username}
	}
	account, isSA := strings.CutPrefix(st.User.Username, saPrefix)
	ns, name, ok := strings.Cut(account, ":")
	if !isSA || !ok || ns == "" || name == "" || strings.Contains(name, ":") || !s.allowed[ns+":"+name] {
		return decision{http.StatusForbidden, "not-allowed", st.User.Username}
	}
	return decision{http.StatusOK, "allowed", st.User.Username}
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

func run() error {
	allowed, err := parseAllowList(os.Getenv("ALLOWED_SERVICE_ACCOUNTS"))
	if err != nil {
		return err
	}
	audience := os.Getenv("AUDIENCE")
	if audience == "" {
		audience = "secret-store"
	}
	timeout := 5 * time.Second
	if raw := os.Getenv("REVIEW_TIMEOUT_SECONDS"); raw != "" {
		seconds, err := strconv.ParseFloat(raw, 64)
		if err != nil || seconds <= 0 || seconds > 300 {
			return fmt.Errorf("REVIEW_TIMEOUT_SECONDS=%q is not a number of seconds in (0, 300]", raw)
		}
		timeout = time.Duration(seconds * float64(time.Second))
	}
	listen := os.Getenv("LISTEN_ADDR")
	if listen == "" {
		listen = ":8081"
	}
	cfg, source, err := restConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes API credentials (%s): %w", source, err)
	}
	cfg.Timeout = timeout
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	s := &store{client.AuthenticationV1().TokenReviews(), audience, allowed, timeout}
	server := &http.Server{
		Addr:              listen,
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdown)
	}()
	logEvent(map[string]any{"event": "listening", "addr": listen, "audience": audience, "api_credentials": source})
	if err := server.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func main() {
	if err := run(); err != nil {
		logEvent(map[string]any{"event": "fatal", "error": err.Error()})
		os.Exit(2)
	}
}
