"""pytest-k8s-sa: a pytest plugin and conformance suite for service-to-service authentication with
Kubernetes service-account tokens (see the README). The plugin is registered through the
``pytest11`` entry point; the library modules work without pytest."""
