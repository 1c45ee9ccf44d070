package metrics_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/client/clienttest"
	"github.com/fleetboot/fleetboot/internal/inventory"
)

func scrape(t *testing.T, base string) string {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("/metrics: %d\n%s", res.StatusCode, b)
	}
	return string(b)
}

func wantLines(t *testing.T, body string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(l) + `$`).MatchString(body) {
			t.Errorf("/metrics lacks the line %q", l)
		}
	}
}

// A scrape shows every machine state (0 included), the full-mode pool's active leases and
// free addresses, request latency by route template, and which build runs.
func TestMetricsScrape(t *testing.T) {
	srv := clienttest.Start(t, nil)
	body := scrape(t, srv.URL)
	wantLines(t, body,
		`fleetboot_machines{state="discovered"} 0`,
		`fleetboot_machines{state="install-pending"} 0`,
		`fleetboot_machines{state="installing"} 0`,
		`fleetboot_machines{state="installed"} 0`,
		`fleetboot_dhcp_leases_active 0`,
		`fleetboot_dhcp_pool_free_addresses 11`,
		`fleetboot_dhcp_pool_addresses 11`,
		// Pre-initialised before any request on the route.
		`fleetboot_http_request_duration_seconds_count{method="GET",route="/isos/:id/files/*"} 0`,
		`fleetboot_http_request_duration_seconds_count{method="GET",route="unmatched"} 0`,
	)
	if !regexp.MustCompile(`(?m)^fleetboot_build_info\{goversion="` + regexp.QuoteMeta(runtime.Version()) +
		`",revision="[^"]+",version="[^"]+"\} 1$`).MatchString(body) {
		t.Errorf("no build info line:\n%s", grep(body, "build_info"))
	}

	ctx := context.Background()
	for i, st := range []inventory.State{inventory.Discovered, inventory.Discovered, inventory.Installed} {
		mac := []string{"52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"}[i]
		if _, err := srv.Inv.CreateMachine(ctx, mac, inventory.MachineUpdate{}); err != nil {
			t.Fatal(err)
		}
		if st != inventory.Discovered {
			if _, err := srv.Inv.Transition(ctx, mac, []inventory.State{inventory.Discovered}, st, "test"); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 0; i < 2; i++ {
		srv.BindLease(t, net.HardwareAddr{0x52, 0x54, 0, 0, 1, byte(i)}, "")
	}
	// Requests to a file inside an ISO and to raw paths nobody routes: the label is the
	// template, never the path.
	for _, p := range []string{"/isos/nosuch/files/a/b.cfg", "/isos/other/files/c", "/no/such/path"} {
		if res, err := http.Get(srv.URL + p); err == nil {
			res.Body.Close()
		}
	}

	body = scrape(t, srv.URL)
	wantLines(t, body,
		`fleetboot_machines{state="discovered"} 2`,
		`fleetboot_machines{state="install-pending"} 0`,
		`fleetboot_machines{state="installed"} 1`,
		`fleetboot_dhcp_leases_active 2`,
		`fleetboot_dhcp_pool_free_addresses 9`,
		`fleetboot_http_request_duration_seconds_count{method="GET",route="/isos/:id/files/*"} 2`,
		`fleetboot_http_request_duration_seconds_count{method="GET",route="unmatched"} 1`,
	)
	for _, raw := range []string{"nosuch", "b.cfg", "/no/such/path"} {
		if strings.Contains(grep(body, "fleetboot_http_request_duration_seconds"), raw) {
			t.Errorf("a raw path (%q) became a label value", raw)
		}
	}
}

func grep(body, s string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
