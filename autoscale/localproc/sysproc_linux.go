//go:build linux

package localproc

import "syscall"

// sysProcAttr puts a child in its own process group, so a Ctrl-C at the
// terminal reaches only the parent, which then stops children in order;
// and asks the kernel to kill it if the parent dies without stopping it,
// so no instance outlives a killed parent.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
