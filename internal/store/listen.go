package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listen calls fn whenever a transaction that called Tx.Notify(channel) commits, in this or
// another instance sharing the PostgreSQL database, until the store is closed. It also calls fn
// after every (re)connection, because notifications sent while disconnected are lost: fn must
// be "look again", never "here is what changed". On SQLite it does nothing.
//
// It holds one extra server connection (LISTEN needs a session of its own); when the server
// goes away it reconnects with a backoff of up to 10 s.
func (s *Store) Listen(channel string, fn func()) {
	if s.db.dialect != Postgres {
		return
	}
	s.listeners.Add(1)
	go func() {
		defer s.listeners.Done()
		backoff := 100 * time.Millisecond
		for s.stop.Err() == nil {
			err := s.listenOnce(channel, fn)
			if s.stop.Err() != nil {
				return
			}
			if err != nil && s.log != nil {
				s.log.Warn("database notifications interrupted; reconnecting", "channel", channel, "err", err, "retry_in", backoff)
			}
			select {
			case <-s.stop.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
		}
	}()
}

func (s *Store) listenOnce(channel string, fn func()) error {
	ctx, cancel := context.WithTimeout(s.stop, 30*time.Second)
	conn, err := pgx.Connect(ctx, s.dsn)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(s.stop, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	fn() // whatever was notified before LISTEN took effect
	for {
		if _, err := conn.WaitForNotification(s.stop); err != nil {
			return err
		}
		fn()
	}
}
