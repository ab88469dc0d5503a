//go:build !unix

package localproc

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
