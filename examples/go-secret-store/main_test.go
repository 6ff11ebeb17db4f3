package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

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
	s := &store{reviews, "secret-store", allowed, time.Second}
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
