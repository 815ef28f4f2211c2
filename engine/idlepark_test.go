package engine

import (
	"testing"
	"time"
)

// TestCollectAfterWave: a collection follows a wave of at least parkWaveMin parked connections
// once none has parked for parkWaveQuiet, and at most once per parkCollectEvery.
func TestCollectAfterWave(t *testing.T) {
	defer lastParkCollect.Store(lastParkCollect.Load())
	lastParkCollect.Store(0)
	w := newWatch(10*time.Millisecond, 0, 0, time.Minute)
	now := int64(time.Hour)

	w.parkWave, w.lastParkAt = parkWaveMin-1, now-int64(time.Second)
	w.collectAfterWave(now)
	if lastParkCollect.Load() != 0 {
		t.Fatal("collected after fewer than parkWaveMin parked connections")
	}
	w.parkWave, w.lastParkAt = parkWaveMin, now-int64(parkWaveQuiet)/2
	w.collectAfterWave(now)
	if lastParkCollect.Load() != 0 {
		t.Fatal("collected while connections were still parking")
	}
	w.lastParkAt = now - int64(parkWaveQuiet)
	w.collectAfterWave(now)
	if lastParkCollect.Load() != now || w.parkWave != 0 {
		t.Fatalf("no collection after a wave: last %d, wave %d", lastParkCollect.Load(), w.parkWave)
	}
	later := now + int64(parkCollectEvery)/2
	w.parkWave, w.lastParkAt = parkWaveMin, later-int64(time.Second)
	w.collectAfterWave(later)
	if lastParkCollect.Load() != now {
		t.Fatal("collected again within parkCollectEvery")
	}
	later = now + int64(parkCollectEvery)
	w.parkWave, w.lastParkAt = parkWaveMin, later-int64(time.Second)
	w.collectAfterWave(later)
	if lastParkCollect.Load() != later {
		t.Fatal("no collection after parkCollectEvery")
	}
}
