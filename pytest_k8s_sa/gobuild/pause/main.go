// Command pause is the pod sandbox process of the local-node provider's pause image.
//
// It does what the upstream pause container does and nothing more: it sleeps, reaps the
// orphaned children it inherits as PID 1 of the pod, and exits 0 on SIGINT or SIGTERM.
// Written here (standard library only) so the image is built locally and never pulled.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
