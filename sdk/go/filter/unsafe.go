package filter

import "unsafe"

// bytesOf views s as bytes without copying; the host only reads them.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
