package wasm

import _ "unsafe" // go:linkname runtime.nanotime

// monotime is the runtime's monotonic clock in nanoseconds, the one time.Since reads, without
// time.Since's wrapping (a synctest-bubble test, the conversion from Time): the call deadline's
// watchdog reads it at the start of every call into a guest (instance.call), and about half
// the instructions of time.Since under callgrind. The runtime keeps this linkname for outside
// packages ("Do not remove or change the type signature", runtime/time_nofake.go); the engine's
// stage timings read it the same way.
//
//go:linkname monotime runtime.nanotime
func monotime() int64
