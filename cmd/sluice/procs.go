package main

import (
	"os"
	"runtime"
)

// minProcs is the fewest Ps (runtime.GOMAXPROCS) `sluice run` serves with.
const minProcs = 2

// atLeastTwoProcs raises GOMAXPROCS to minProcs where the runtime chose fewer, which on Linux
// happens only when the process may run on a single CPU (taskset, a cpuset of one CPU, a
// one-CPU machine): the runtime rounds a cgroup CPU limit below 2 up to 2 already. A GOMAXPROCS
// set in the environment is left alone.
//
// With one P, all of the gateway's Go code runs on one thread. On a CPU it shares with another
// busy process (an upstream or an application beside it, as in the benchmark) that thread needs
// more than its fair share of the CPU, so the kernel's scheduler (EEVDF) finds it ineligible and
// lets each wake-up of the neighbour preempt it: every request the gateway writes to an upstream
// on the same CPU woke the upstream and handed it the CPU for that one request, and the upstream
// paid its wake-up (about 3.7 µs) for 2.7 requests on average instead of about 8. With two Ps the
// work spreads over two or three threads, none over its share, and the neighbour runs when the
// gateway's threads yield (RATIONALE.md, "Why does the upstream spend more per request behind
// Sluice…"). Setting GOMAXPROCS stops the runtime's automatic updates of it, which for a
// single-CPU process could only follow a change of its affinity.
func atLeastTwoProcs() {
	if os.Getenv("GOMAXPROCS") != "" || runtime.GOMAXPROCS(0) >= minProcs {
		return
	}
	runtime.GOMAXPROCS(minProcs)
}
