package server

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// limitedLog writes at most burst lines per window and drops the rest, saying on its next line how many it
// dropped: whoever can send requests must not be able to fill the disk through refusals. The metrics still
// count every refusal.
type limitedLog struct {
	log    *zap.Logger
	window time.Duration
	burst  int

	mu      sync.Mutex
	start   time.Time
	written int
	dropped int
}

// Refusal logging: ten lines per ten seconds, at most.
const (
	refusalLogWindow = 10 * time.Second
	refusalLogBurst  = 10
)

func newLimitedLog(log *zap.Logger, window time.Duration, burst int) *limitedLog {
	return &limitedLog{log: log, window: window, burst: burst}
}

// Info logs msg unless this window's lines are spent.
func (l *limitedLog) Info(msg string, fields ...zap.Field) {
	l.mu.Lock()
	if now := time.Now(); now.Sub(l.start) >= l.window {
		l.start, l.written = now, 0
	}
	if l.written >= l.burst {
		l.dropped++
		l.mu.Unlock()
		return
	}
	l.written++
	dropped := l.dropped
	l.dropped = 0
	l.mu.Unlock()
	if dropped > 0 {
		fields = append(fields, zap.Int("droppedBefore", dropped))
	}
	l.log.Info(msg, fields...)
}
