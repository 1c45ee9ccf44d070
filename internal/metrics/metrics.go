// Package metrics owns fleetboot's Prometheus metrics: one registry per server (no globals),
// names fleetboot_<subsystem>_<what>_<unit>, label values pre-initialised so dashboards see
// zeros rather than gaps.
package metrics

import (
	"net/http"

	"github.com/fleetboot/fleetboot/internal/grub"
	"github.com/fleetboot/fleetboot/internal/ipxe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
}

// Label values known up front.
var (
	dhcpKinds     = []string{"offer", "ack", "nak", "proxy-offer", "proxy-ack", "ignored", "dropped", "release", "decline", "inform"}
	firmwares     = []string{"bios-pxe", "uefi-pxe", "uefi-http", "ipxe", "other"}
	tftpResults   = []string{"ok", "probe", "error"}
	httpRoutes    = []string{"boot", "ipxe", "grub", "assets", "iso", "api", "other"}
	codeClasses   = []string{"2xx", "3xx", "4xx", "5xx"}
	scriptKinds   = []string{"chain", "target", "menu", "local", "autoexec"}
	tftpFileNames = append(append(ipxe.Served(), grub.Served()...), "other")
)

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
	}
	m.reg.MustRegister(m.DHCPReplies, m.TFTPTransfers, m.TFTPBytes, m.HTTPRequests, m.HTTPBytes, m.BootScripts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
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
	return m
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
