module github.com/pytest-k8s-sa/pause

go 1.24.0
