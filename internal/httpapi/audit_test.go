package httpapi_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/fleetboot/fleetboot/internal/audit"
	"github.com/fleetboot/fleetboot/internal/server"
)

// TestEveryChangeIsAudited: changes (done, failed, refused to the read-only token) land in the
// audit log with who, what, target and result, and in the log; reads do not; only the admin
// may read the audit log.
func TestEveryChangeIsAudited(t *testing.T) {
	var mu sync.Mutex
	var logs bytes.Buffer
	e := newISOEnvWith(t, func(d *server.Deps) {
		d.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	})
	const mac = "52:54:00:00:00:01"
	hdr := map[string]string{"Content-Type": "application/json"}
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"`+mac+`"}`, http.StatusCreated, nil)
	e.jsonCall(t, "GET", "/api/v1/machines/"+mac, "", http.StatusOK, nil)
	e.jsonCall(t, "DELETE", "/api/v1/profiles/nope", "", http.StatusNotFound, nil)
	if res, _ := e.do(t, "DELETE", "/api/v1/machines/"+mac, testReadOnlyToken, hdr, nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("read-only delete: %d", res.StatusCode)
	}
	if res, _ := e.do(t, "GET", "/api/v1/audit", testReadOnlyToken, nil, nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("read-only GET /audit: %d, want 403", res.StatusCode)
	}
	var got []audit.Entry
	e.jsonCall(t, "GET", "/api/v1/audit", "", http.StatusOK, &got)
	type row struct {
		scope, method, route, target string
		status                       int
	}
	want := []row{
		{"read", "DELETE", "/api/v1/machines/:mac", "mac=" + mac, 403},
		{"admin", "DELETE", "/api/v1/profiles/:name", "name=nope", 404},
		{"admin", "POST", "/api/v1/machines", "", 201},
	}
	if len(got) != len(want) {
		t.Fatalf("audit has %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if (row{g.Scope, g.Method, g.Route, g.Target, g.Status}) != w || g.IP != "127.0.0.1" || g.Time.IsZero() {
			t.Errorf("entry %d: %+v, want %+v from 127.0.0.1", i, g, w)
		}
	}
	if !strings.Contains(got[0].Error, "admin token") || got[2].Error != "" {
		t.Errorf("errors: %q %q", got[0].Error, got[2].Error)
	}
	// Paging and bad queries.
	var page []audit.Entry
	e.jsonCall(t, "GET", "/api/v1/audit?limit=1&before="+jsonInt(got[0].ID), "", http.StatusOK, &page)
	if len(page) != 1 || page[0].ID != got[1].ID {
		t.Fatalf("page: %+v", page)
	}
	for _, q := range []string{"limit=0", "limit=x", "before=-1", "since=yesterday"} {
		e.jsonCall(t, "GET", "/api/v1/audit?"+q, "", http.StatusBadRequest, nil)
	}
	mu.Lock()
	defer mu.Unlock()
	if l := logs.String(); !strings.Contains(l, `msg=audit scope=admin ip=127.0.0.1 method=POST route=/api/v1/machines`) ||
		!strings.Contains(l, `level=WARN msg=audit scope=read ip=127.0.0.1 method=DELETE route=/api/v1/machines/:mac target="mac=`+mac+`" status=403 err="DELETE /api/v1/machines/`+mac+` needs the admin token`) {
		t.Errorf("log lacks the audit lines:\n%s", l)
	}
}

func jsonInt(v int64) string { b, _ := json.Marshal(v); return string(b) }
