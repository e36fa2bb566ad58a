package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// Serve runs h on addr until ctx ends, then drains requests for up to 20 seconds.
func Serve(ctx context.Context, addr string, h http.Handler, logger *zap.Logger) error {
	srv := HTTPServer(addr, h)
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("webhook server listening", zap.String("addr", addr))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
