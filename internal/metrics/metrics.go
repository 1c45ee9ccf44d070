// Package metrics owns fleetboot's Prometheus metrics: one registry per server (no globals),
// names fleetboot_<subsystem>_<what>_<unit>, label values pre-initialised so dashboards see
// zeros rather than gaps.
package metrics

import (
	"context"
	"net/http"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/fleetboot/fleetboot/internal/auth"
	"github.com/fleetboot/fleetboot/internal/boot"
	"github.com/fleetboot/fleetboot/internal/dhcp"
	"github.com/fleetboot/fleetboot/internal/grub"
	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/isostore"
	"github.com/fleetboot/fleetboot/internal/quirk"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Metrics holds every collector fleetboot updates.
type Metrics struct {
	reg *prometheus.Registry

	DHCPReplies   *prometheus.CounterVec // kind, firmware
	TFTPTransfers *prometheus.CounterVec // file, result
	TFTPBytes     *prometheus.CounterVec // file
	HTTPRequests  *prometheus.CounterVec // route, code class
	HTTPBytes     *prometheus.CounterVec // route
	BootScripts   *prometheus.CounterVec // kind
	Quirks        *prometheus.CounterVec // quirk (internal/quirk kinds)
	APIDenied     *prometheus.CounterVec // reason (internal/auth denials)
	HTTPLimited   *prometheus.CounterVec // limit (requests refused by a resource limit)
	// TimelineDropped counts DHCP timeline events dropped because the queue to the database
	// was full (the answers were sent; only the timeline lines are lost).
	TimelineDropped prometheus.Counter
	// HTTPDuration observes every request's duration by method and route template
	// ("/isos/:id/files/*", never the raw path: one series per route, not per file).
	HTTPDuration *prometheus.HistogramVec // method, route
	// ISOImages counts the catalog's ISOs by what this instance knows of their bytes.
	ISOImages *prometheus.GaugeVec // state (isostore.ImageStates)
}

// UnmatchedRoute is the route label of requests no route matched.
const UnmatchedRoute = "unmatched"

// httpMethods are the method label values; others fold into "other" (a client chooses the
// method, and must not grow the label set).
var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// MethodLabel folds a request method into the known label set.
func MethodLabel(m string) string {
	for _, k := range httpMethods {
		if k == m {
			return m
		}
	}
	return "other"
}

// Label values known up front.
var (
	dhcpKinds     = labels(dhcp.EventKinds)
	firmwares     = labels(dhcp.Firmwares)
	tftpResults   = []string{"ok", "probe", "error"}
	httpRoutes    = []string{"boot", "ipxe", "grub", "assets", "iso", "api", "other"}
	codeClasses   = []string{"2xx", "3xx", "4xx", "5xx"}
	scriptKinds   = labels(boot.Kinds)
	tftpFileNames = append(append(ipxe.Served(), grub.Served()...), "other")
)

// labels turns a typed list of label values (an enum's single definition) into strings.
func labels[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// New creates the collectors in a fresh registry (plus Go runtime and process collectors).
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		DHCPReplies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetboot_dhcp_packets_total", Help: "DHCP packets answered, ignored or dropped, by outcome and client firmware.",
		}, []string{"kind", "firmware"}),
		TFTPTransfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetboot_tftp_transfers_total", Help: "TFTP transfers by file and result (probe: a UEFI tsize probe the client aborted on purpose).",
		}, []string{"file", "result"}),
		TFTPBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetboot_tftp_sent_bytes_total", Help: "Bytes sent over TFTP by file.",
		}, []string{"file"}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetboot_http_requests_total", Help: "HTTP requests by route group and status class.",
		}, []string{"route", "code"}),
		HTTPBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetboot_http_sent_bytes_total", Help: "Response body bytes sent by route group.",
		}, []string{"route"}),
		BootScripts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetboot_boot_scripts_total", Help: "iPXE scripts served by kind.",
		}, []string{"kind"}),
		Quirks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetboot_quirks_total", Help: "Network problems detected while machines boot (README: Troubleshooting), by kind.",
		}, []string{"quirk"}),
		APIDenied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetboot_api_denied_total", Help: "API calls turned away: unauthorized (no or wrong token), rate_limited (too many failed sign-ins from the address), forbidden (read-only token on a change).",
		}, []string{"reason"}),
		TimelineDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fleetboot_dhcp_timeline_dropped_total", Help: "DHCP events left out of machine timelines because the database fell behind (answers were still sent).",
		}),
		HTTPLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetboot_http_limited_total", Help: "HTTP requests refused by a resource limit: uploads (--max-uploads running at once).",
		}, []string{"limit"}),
		// Boot scripts and API calls take milliseconds, kernels and ISOs seconds to minutes:
		// the buckets span both.
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fleetboot_http_request_duration_seconds", Help: "HTTP request duration (to the last byte sent) by method and route template.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"method", "route"}),
		ISOImages: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fleetboot_iso_images", Help: "ISOs of the catalog by the state of their bytes on this instance: verified, unverified (checked at first use), missing, corrupt, changed; refreshed at start and every minute.",
		}, []string{"state"}),
	}
	for _, s := range isostore.ImageStates {
		m.ISOImages.WithLabelValues(string(s))
	}
	m.reg.MustRegister(m.ISOImages, m.DHCPReplies, m.TFTPTransfers, m.TFTPBytes, m.HTTPRequests, m.HTTPBytes, m.BootScripts, m.HTTPDuration, m.Quirks, m.APIDenied, m.HTTPLimited, m.TimelineDropped,
		buildInfo(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, k := range dhcpKinds {
		for _, f := range firmwares {
			m.DHCPReplies.WithLabelValues(k, f)
		}
	}
	for _, f := range tftpFileNames {
		m.TFTPBytes.WithLabelValues(f)
		for _, r := range tftpResults {
			m.TFTPTransfers.WithLabelValues(f, r)
		}
	}
	for _, r := range httpRoutes {
		m.HTTPBytes.WithLabelValues(r)
		for _, c := range codeClasses {
			m.HTTPRequests.WithLabelValues(r, c)
		}
	}
	for _, k := range scriptKinds {
		m.BootScripts.WithLabelValues(k)
	}
	for _, k := range quirk.Kinds {
		m.Quirks.WithLabelValues(string(k))
	}
	m.HTTPLimited.WithLabelValues("uploads")
	for _, d := range auth.Denials {
		m.APIDenied.WithLabelValues(string(d))
	}
	return m
}

// InitRoutes pre-initialises the latency histogram for every method and route template the
// HTTP server has, and for unmatched requests.
func (m *Metrics) InitRoutes(routes [][2]string) {
	for _, r := range routes {
		m.HTTPDuration.WithLabelValues(MethodLabel(r[0]), r[1])
	}
	for _, meth := range httpMethods {
		m.HTTPDuration.WithLabelValues(meth, UnmatchedRoute)
	}
}

// buildInfo is fleetboot_build_info{version,goversion,revision} 1, from what the Go
// toolchain stamped into the binary.
func buildInfo() prometheus.Collector {
	version, revision, goVersion := "devel", "unknown", runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			version = v
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				revision = s.Value
			}
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "fleetboot_build_info",
		Help:        "Always 1; the labels say which fleetboot build runs.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": goVersion, "revision": revision},
	})
	g.Set(1)
	return g
}

// Live are the values read on every scrape rather than counted as they happen.
type Live struct {
	// MachineStates counts machines per state; States lists every state, so that each has a
	// series (0 when no machine is in it).
	MachineStates func(ctx context.Context) (map[string]int, error)
	States        []string
	// Pool reports the full-mode DHCP pool: active leases, free and total addresses. Nil when
	// fleetboot hands out no addresses (the gauges are then absent).
	Pool func(ctx context.Context) (active, free, size int, err error)
	// OnError is told when a value cannot be read (the scrape then lacks that metric).
	OnError func(what string, err error)
}

// Watch registers the scrape-time gauges: fleetboot_machines{state},
// fleetboot_dhcp_leases_active, fleetboot_dhcp_pool_free_addresses and
// fleetboot_dhcp_pool_addresses.
func (m *Metrics) Watch(l Live) {
	m.reg.MustRegister(&liveCollector{l: l})
}

var (
	machinesDesc   = prometheus.NewDesc("fleetboot_machines", "Machines by state.", []string{"state"}, nil)
	leasesDesc     = prometheus.NewDesc("fleetboot_dhcp_leases_active", "Full-mode DHCP leases offered or bound and not expired.", nil, nil)
	poolFreeDesc   = prometheus.NewDesc("fleetboot_dhcp_pool_free_addresses", "Full-mode pool addresses no lease or quarantine holds.", nil, nil)
	poolSizeDesc   = prometheus.NewDesc("fleetboot_dhcp_pool_addresses", "Full-mode pool addresses that can be handed out (the range minus exclusions).", nil, nil)
	scrapeDeadline = 5 * time.Second
)

type liveCollector struct{ l Live }

func (c *liveCollector) Describe(ch chan<- *prometheus.Desc) {
	if c.l.MachineStates != nil {
		ch <- machinesDesc
	}
	if c.l.Pool != nil {
		ch <- leasesDesc
		ch <- poolFreeDesc
		ch <- poolSizeDesc
	}
}

func (c *liveCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeDeadline)
	defer cancel()
	fail := func(what string, err error) {
		if c.l.OnError != nil {
			c.l.OnError(what, err)
		}
	}
	if c.l.MachineStates != nil {
		if n, err := c.l.MachineStates(ctx); err != nil {
			fail("machines by state", err)
		} else {
			for _, s := range c.l.States {
				ch <- prometheus.MustNewConstMetric(machinesDesc, prometheus.GaugeValue, float64(n[s]), s)
			}
		}
	}
	if c.l.Pool != nil {
		if active, free, size, err := c.l.Pool(ctx); err != nil {
			fail("dhcp pool", err)
		} else {
			ch <- prometheus.MustNewConstMetric(leasesDesc, prometheus.GaugeValue, float64(active))
			ch <- prometheus.MustNewConstMetric(poolFreeDesc, prometheus.GaugeValue, float64(free))
			ch <- prometheus.MustNewConstMetric(poolSizeDesc, prometheus.GaugeValue, float64(size))
		}
	}
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// TFTPFileLabel folds arbitrary requested names into the known label set, so a client asking
// for random names cannot grow the metric's cardinality.
func TFTPFileLabel(name string) string {
	for _, f := range tftpFileNames {
		if f == name {
			return f
		}
	}
	return "other"
}

// CodeClass maps a status code to "2xx".."5xx".
func CodeClass(code int) string {
	switch {
	case code >= 500:
		return "5xx"
	case code >= 400:
		return "4xx"
	case code >= 300:
		return "3xx"
	default:
		return "2xx"
	}
}

// Gather returns the current value of every metric (the web UI's health page shows them).
func (m *Metrics) Gather() ([]*dto.MetricFamily, error) { return m.reg.Gather() }
