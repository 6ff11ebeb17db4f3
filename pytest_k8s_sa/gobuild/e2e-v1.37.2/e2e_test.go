// Package e2e is upstream Kubernetes' SIG Auth end-to-end suite (k8s.io/kubernetes/test/e2e/auth)
// in a test binary of its own, built with `go test -c` by pytest-k8s-sa (`k8s-sa upstream-e2e`).
//
// Why not upstream's test/e2e package: it links every SIG's specs (a much longer build) and its
// suite setup requires schedulable nodes, which a control-plane-only cluster (the `local`
// provider) does not have. This file keeps upstream's flag handling (TestMain of
// test/e2e/e2e_test.go) and replaces the suite setup with the node-independent part: load the
// client, log the server version, record the cluster's IP family. Specs and the e2e framework
// (namespaces per spec, cleanup, JUnit in --report-dir) are upstream's, unchanged.
package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-base/logs"
	"k8s.io/component-base/version"
	"k8s.io/klog/v2"
	utilnet "k8s.io/utils/net"

	"k8s.io/kubernetes/test/e2e/framework"
	"k8s.io/kubernetes/test/e2e/framework/config"
	imageutils "k8s.io/kubernetes/test/utils/image"

	// define and freeze constants
	_ "k8s.io/kubernetes/test/e2e/feature"

	// test sources: SIG Auth only
	_ "k8s.io/kubernetes/test/e2e/auth"

	// reconfigure framework as upstream's suite does (dump on failure, nodes ready after each spec)
	_ "k8s.io/kubernetes/test/e2e/framework/debug/init"
	_ "k8s.io/kubernetes/test/e2e/framework/node/init"
	_ "k8s.io/kubernetes/test/utils/ktesting/format"

	// ensure auth plugins are loaded (exec, oidc) for --kubeconfig clusters
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	// Ensure that logging flags are part of the command line.
	_ "k8s.io/component-base/logs/testinit"
)

func TestMain(m *testing.M) {
	var versionFlag bool
	flag.CommandLine.BoolVar(&versionFlag, "version", false, "Displays version information.")
	listImages := flag.CommandLine.Bool("k8s-sa-list-images", false,
		"Print the images the SIG Auth specs use as JSON (after $KUBE_TEST_REPO_LIST) and exit.")
	config.CopyFlags(config.Flags, flag.CommandLine)
	framework.RegisterCommonFlags(flag.CommandLine)
	framework.RegisterClusterFlags(flag.CommandLine)
	flag.Parse()
	if versionFlag {
		fmt.Printf("%s\n", version.Get())
		os.Exit(0)
	}
	if *listImages {
		images := map[string]string{
			"agnhost": imageutils.GetE2EImage(imageutils.Agnhost),
			"busybox": imageutils.GetE2EImage(imageutils.BusyBox),
		}
		if err := json.NewEncoder(os.Stdout).Encode(images); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if flag.CommandLine.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "unknown additional command line arguments: %s", flag.CommandLine.Args())
		os.Exit(1)
	}
	framework.AfterReadingAllFlags(&framework.TestContext)
	os.Exit(m.Run())
}

func TestE2E(t *testing.T) {
	logs.InitLogs()
	defer logs.FlushLogs()
	klog.EnableContextualLogging(true)
	gomega.RegisterFailHandler(framework.Fail)
	suiteConfig, reporterConfig := framework.CreateGinkgoConfig()
	klog.Infof("Starting e2e run %q on Ginkgo node %d", framework.RunID, suiteConfig.ParallelProcess)
	ginkgo.RunSpecs(t, "Kubernetes SIG Auth e2e suite (pytest-k8s-sa)", suiteConfig, reporterConfig)
}

var _ = ginkgo.SynchronizedBeforeSuite(func(ctx context.Context) []byte {
	c, err := framework.LoadClientset()
	framework.ExpectNoError(err, "Error loading client")
	framework.Logf("e2e test version: %s", version.Get().GitVersion)
	if serverVersion, err := c.DiscoveryClient.ServerVersion(); err == nil {
		framework.Logf("kube-apiserver version: %s", serverVersion.GitVersion)
	} else {
		framework.Logf("Unexpected server error retrieving version: %v", err)
	}
	return nil
}, func(ctx context.Context, _ []byte) {
	c, err := framework.LoadClientset()
	framework.ExpectNoError(err, "Error loading client")
	svc, err := c.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
	framework.ExpectNoError(err, "Failed to get kubernetes service ClusterIP")
	framework.TestContext.IPFamily = "ipv4"
	if utilnet.IsIPv6String(svc.Spec.ClusterIP) {
		framework.TestContext.IPFamily = "ipv6"
	}
	framework.Logf("Cluster IP family: %s", framework.TestContext.IPFamily)
})
