"""Unit tests of the reference workloads (in-process, against a stub TokenReview API)."""
