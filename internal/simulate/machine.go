package simulate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/fleetboot/fleetboot/internal/dhcp"
)

// Firmware is the kind of network boot firmware a simulated machine has: the server's own
// firmware kinds (internal/dhcp), so a simulated machine and the timeline name it alike.
type Firmware = dhcp.Firmware

// The firmware kinds a machine can simulate, each with the DHCP options and first boot steps
// real firmware of that kind shows (README "Firmware facts"):
//   - FirmwareBIOSPXE: legacy BIOS PXE ROM. Option 93 = 0, vendor class PXEClient; TFTPs
//     undionly.kpxe, which then does DHCP again as iPXE.
//   - FirmwareUEFIPXE: UEFI x64 PXE (EDK2). Option 93 = 7; TFTPs the iPXE EFI binary.
//   - FirmwareUEFIHTTP: UEFI x64 HTTP Boot. Option 93 = 16, vendor class HTTPClient; gets a
//     URL and fetches the iPXE binary with HEAD then GET.
//   - FirmwareIPXE: iPXE already in the NIC's ROM: DHCP with user class iPXE, straight to HTTP.
const (
	FirmwareBIOSPXE  = dhcp.FirmwareBIOSPXE
	FirmwareUEFIPXE  = dhcp.FirmwareUEFIPXE
	FirmwareUEFIHTTP = dhcp.FirmwareUEFIHTTP
	FirmwareIPXE     = dhcp.FirmwareIPXE
)

// Firmwares lists the kinds in the order reports show them.
var Firmwares = []Firmware{FirmwareBIOSPXE, FirmwareUEFIPXE, FirmwareUEFIHTTP, FirmwareIPXE}

type stage int

const (
	stageFirmware stage = iota
	stageIPXE
)

// Phases of one machine's boot, in order. A machine records the ones its firmware goes
// through; a failure is counted against the phase it happened in.
const (
	PhaseDHCP       = "dhcp"       // the firmware's DHCP (DISCOVER … ACK, or the proxy's OFFER)
	PhaseTFTP       = "tftp"       // PXE: tsize probe, then the iPXE binary
	PhaseNBPHTTP    = "nbp-http"   // UEFI HTTP Boot: HEAD and GET of the iPXE binary
	PhaseDHCPIPXE   = "dhcp-ipxe"  // iPXE's own DHCP
	PhaseScript     = "script"     // boot.ipxe, then the identify request's machine script
	PhaseKernel     = "kernel"     // the kernel, in Range requests
	PhaseInitrd     = "initrd"     // every initrd, in Range requests
	PhaseUnattended = "unattended" // the preseed/kickstart/… file named on the command line
	PhaseDone       = "done"       // POST /boot/done/{mac}
)

// Phases lists every phase in chain order.
var Phases = []string{PhaseDHCP, PhaseTFTP, PhaseNBPHTTP, PhaseDHCPIPXE, PhaseScript, PhaseKernel, PhaseInitrd, PhaseUnattended, PhaseDone}

// rangeChunk is the size of the Range requests files are fetched in.
const rangeChunk = 4 << 20

// machine is one simulated machine.
type machine struct {
	n    int
	mac  net.HardwareAddr
	uuid [16]byte
	fw   Firmware
	ip   netip.Addr // proxy mode: assigned up front (the site DHCP server's part)
	// server, if set, is the only server whose OFFERs the machine takes (a client choosing
	// among an HA pair's); otherwise it takes the first, as firmware does.
	server netip.Addr
	// stopAfter, if set, ends the boot after this phase (tests: a machine whose server dies
	// mid-install).
	stopAfter string
	start     time.Duration
	client    *http.Client
}

// phaseResult is one phase of one machine.
type phaseResult struct {
	Phase   string
	Dur     time.Duration
	Bytes   int64
	Retries int
}

// machineResult is what one machine's boot did.
type machineResult struct {
	MAC      string
	Firmware Firmware
	Phases   []phaseResult
	Failed   string // the phase that failed, "" on success
	Err      string
}

// chain is everything a machine needs from the run.
type chain struct {
	ns       *nsThread
	wire     *wire
	full     bool
	progress *progress
}

func (m *machine) macHyphen() string { return strings.ReplaceAll(m.mac.String(), ":", "-") }

// boot runs the machine's whole chain, firmware to done callback.
func (c *chain) boot(ctx context.Context, m *machine) machineResult {
	res := machineResult{MAC: m.mac.String(), Firmware: m.fw}
	phase := func(name string, f func() (int64, int, error)) bool {
		c.progress.enter(name)
		defer c.progress.leave(name)
		t0 := time.Now()
		n, retries, err := f()
		res.Phases = append(res.Phases, phaseResult{Phase: name, Dur: time.Since(t0), Bytes: n, Retries: retries})
		c.progress.bytes.Add(n)
		if err != nil {
			res.Failed, res.Err = name, err.Error()
			return false
		}
		return name != m.stopAfter
	}

	if m.fw != FirmwareIPXE {
		var boot *dhcpv4.DHCPv4
		if !phase(PhaseDHCP, func() (int64, int, error) {
			r, tries, err := c.dhcp(ctx, m, stageFirmware)
			boot = r
			return 0, tries, err
		}) {
			return res
		}
		file := bootFile(boot)
		switch m.fw {
		case FirmwareUEFIHTTP:
			if !phase(PhaseNBPHTTP, func() (int64, int, error) {
				if !strings.HasPrefix(file, "http://") {
					return 0, 0, fmt.Errorf("HTTP Boot got boot file %q, not a URL", file)
				}
				if err := m.head(ctx, file); err != nil {
					return 0, 0, err
				}
				n, err := m.get(ctx, file, false)
				return n, 0, err
			}) {
				return res
			}
		default:
			if !phase(PhaseTFTP, func() (int64, int, error) {
				if file == "" || strings.Contains(file, "://") {
					return 0, 0, fmt.Errorf("PXE got boot file %q, not a TFTP path", file)
				}
				next := replyServer(boot)
				if a, ok := netip.AddrFromSlice(boot.ServerIPAddr.To4()); ok && !a.IsUnspecified() {
					next = a
				}
				n, err := tftpFetch(c.ns, m.ip, netip.AddrPortFrom(next, 69), file)
				return n, 0, err
			}) {
				return res
			}
		}
	}

	var script string
	if !phase(PhaseDHCPIPXE, func() (int64, int, error) {
		r, tries, err := c.dhcp(ctx, m, stageIPXE)
		if err == nil {
			script = bootFile(r)
			if !strings.HasPrefix(script, "http://") {
				err = fmt.Errorf("iPXE got boot file %q, not the boot script URL", script)
			}
		}
		return 0, tries, err
	}) {
		return res
	}

	var kernel string
	var initrds []string
	var args []string
	if !phase(PhaseScript, func() (int64, int, error) {
		body, err := m.text(ctx, script)
		if err != nil {
			return 0, 0, err
		}
		n := int64(len(body))
		next := chainURL(body)
		if next == "" {
			return n, 0, fmt.Errorf("boot.ipxe has no chain line:\n%s", body)
		}
		body, err = m.text(ctx, m.expand(next))
		if err != nil {
			return n, 0, fmt.Errorf("identify: %w", err)
		}
		n += int64(len(body))
		kernel, args, initrds = parseBoot(body)
		if kernel == "" {
			return n, 0, fmt.Errorf("the machine's script boots no kernel (nothing assigned to install?):\n%s", firstLines(body, 6))
		}
		return n, 0, nil
	}) {
		return res
	}
	if !phase(PhaseKernel, func() (int64, int, error) {
		n, err := m.get(ctx, kernel, true)
		return n, 0, err
	}) {
		return res
	}
	if !phase(PhaseInitrd, func() (int64, int, error) {
		var total int64
		for _, u := range initrds {
			n, err := m.get(ctx, u, true)
			total += n
			if err != nil {
				return total, 0, err
			}
		}
		return total, 0, nil
	}) {
		return res
	}
	if files := unattendedURLs(args); len(files) > 0 {
		if !phase(PhaseUnattended, func() (int64, int, error) {
			var total int64
			for _, u := range files {
				b, err := m.text(ctx, u)
				total += int64(len(b))
				if err != nil {
					return total, 0, err
				}
			}
			return total, 0, nil
		}) {
			return res
		}
	}
	phase(PhaseDone, func() (int64, int, error) {
		// The installer calls back the server that handed it out: the one whose boot script
		// this is (several may serve the segment).
		su, err := url.Parse(script)
		if err != nil {
			return 0, 0, err
		}
		u := fmt.Sprintf("http://%s/boot/done/%s", su.Host, m.macHyphen())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
		resp, err := m.client.Do(req)
		if err != nil {
			return 0, 0, err
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, 0, fmt.Errorf("POST %s: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
		}
		return 0, 0, nil
	})
	return res
}

// dhcp runs one DHCP exchange of the machine at stage. Full mode: DISCOVER, OFFER, REQUEST,
// ACK, and the machine takes the address. Proxy mode: DISCOVER and the proxy's OFFER (boot
// options only); the machine's address is its stand-in site server's (m.ip).
func (c *chain) dhcp(ctx context.Context, m *machine, st stage) (*dhcpv4.DHCPv4, int, error) {
	opts := dhcpOptions(m.fw, st, m.uuid)
	disc, err := dhcpv4.NewDiscovery(m.mac, opts...)
	if err != nil {
		return nil, 0, err
	}
	bcast := netip.AddrFrom4([4]byte{255, 255, 255, 255})
	offer, tries, err := c.wire.exchange(ctx, m.mac, netip.Addr{}, bcast, 67, m.server, disc, dhcpv4.MessageTypeOffer)
	if err != nil {
		return nil, tries, fmt.Errorf("DISCOVER: %w", err)
	}
	if !c.full {
		return offer, tries, nil
	}
	req, err := dhcpv4.NewRequestFromOffer(offer, opts...)
	if err != nil {
		return nil, tries, err
	}
	ack, t2, err := c.wire.exchange(ctx, m.mac, netip.Addr{}, bcast, 67, replyServer(offer), req, dhcpv4.MessageTypeAck)
	tries += t2
	if err != nil {
		return nil, tries, fmt.Errorf("REQUEST %s: %w", offer.YourIPAddr, err)
	}
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || !machineNet.Contains(ip) {
		return nil, tries, fmt.Errorf("ACK gave %s, outside the simulated LAN %s", ack.YourIPAddr, machineNet)
	}
	if m.ip.IsValid() && m.ip != ip {
		return nil, tries, fmt.Errorf("iPXE's ACK gave %s, the firmware's gave %s", ip, m.ip)
	}
	m.ip = ip
	return ack, tries, nil
}

// bootFile is the boot file name of a reply: option 67, or the header's file field.
func bootFile(m *dhcpv4.DHCPv4) string {
	if f := m.BootFileNameOption(); f != "" {
		return f
	}
	return m.BootFileName
}

// ipxeVar matches an iPXE setting in a script, e.g. ${netX/mac:hexhyp}.
var ipxeVar = regexp.MustCompile(`\$\{([^}]*)\}`)

// expand fills in the settings iPXE would, as the simulated machine's hardware.
func (m *machine) expand(u string) string {
	arch, platform := "x86_64", "efi"
	if m.fw == FirmwareBIOSPXE {
		arch, platform = "i386", "pcbios"
	}
	return ipxeVar.ReplaceAllStringFunc(u, func(v string) string {
		name := v[2 : len(v)-1]
		name, _, _ = strings.Cut(name, ":")
		switch name {
		case "netX/mac", "net0/mac", "mac":
			return m.macHyphen()
		case "uuid":
			return formatUUID(m.uuid)
		case "buildarch":
			return arch
		case "platform":
			return platform
		case "netX/ip", "net0/ip", "ip":
			return m.ip.String()
		case "manufacturer":
			return "fleetboot-simulator"
		case "product":
			return url.QueryEscape("Simulated " + string(m.fw))
		case "serial":
			return fmt.Sprintf("SIM%06d", m.n)
		case "memsize":
			return "4096"
		case "cpuvendor":
			return "GenuineIntel"
		case "netX/chip", "net0/chip":
			return "virtio-net"
		case "netX/bustype", "net0/bustype":
			return "PCI"
		}
		return ""
	})
}

func formatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// chainURL is the URL of a script's first chain command.
func chainURL(script string) string {
	for _, l := range strings.Split(script, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "chain" {
			for _, w := range f[1:] {
				if strings.HasPrefix(w, "http://") {
					return w
				}
			}
		}
	}
	return ""
}

// parseBoot reads the kernel (with its arguments) and the initrds of an iPXE boot script.
func parseBoot(script string) (kernel string, args, initrds []string) {
	for _, l := range strings.Split(script, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "kernel", "imgexec", "initrd":
			for i, w := range f[1:] {
				if !strings.HasPrefix(w, "http://") {
					continue
				}
				if f[0] == "initrd" {
					initrds = append(initrds, w)
				} else if kernel == "" {
					kernel = w
					for _, a := range f[i+2:] {
						if a == "||" {
							break
						}
						args = append(args, a)
					}
				}
				break
			}
		}
	}
	return kernel, args, initrds
}

// unattendedURLs are the unattended-install files the kernel command line names (url=,
// inst.ks=, autoyast=, or the nocloud seed directory ds=nocloud-net;s=…/).
func unattendedURLs(args []string) []string {
	var out []string
	for _, a := range args {
		i := strings.Index(a, "http://")
		if i < 0 || !strings.Contains(a, "/unattended/") {
			continue
		}
		u := a[i:]
		if strings.HasSuffix(u, "/") {
			out = append(out, u+"meta-data", u+"user-data")
			continue
		}
		out = append(out, u)
	}
	return out
}

func firstLines(s string, n int) string {
	l := strings.SplitN(s, "\n", n+1)
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, "\n")
}

// text GETs a small text resource.
func (m *machine) text(ctx context.Context, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return string(b), fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s: %s", u, resp.Status, firstLines(strings.TrimSpace(string(b)), 3))
	}
	return string(b), nil
}

// head sends HEAD as UEFI HTTP Boot does before its GET.
func (m *machine) head(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength <= 0 {
		return fmt.Errorf("HEAD %s: %s, length %d", u, resp.Status, resp.ContentLength)
	}
	return nil
}

// get downloads u, discarding the bytes. With ranged, it asks for rangeChunk bytes at a time
// (Range: bytes=a-b) and checks every 206 against the Content-Range total of the first.
func (m *machine) get(ctx context.Context, u string, ranged bool) (int64, error) {
	var got, total int64 = 0, -1
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return got, err
		}
		if ranged {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", got, got+rangeChunk-1))
		}
		resp, err := m.client.Do(req)
		if err != nil {
			return got, err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got += n
		if err != nil {
			return got, fmt.Errorf("GET %s: %w", u, err)
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			if resp.ContentLength >= 0 && n != resp.ContentLength {
				return got, fmt.Errorf("GET %s: %d of %d bytes", u, n, resp.ContentLength)
			}
			return got, nil
		case resp.StatusCode == http.StatusPartialContent && ranged:
			t, err := rangeTotal(resp.Header.Get("Content-Range"))
			if err != nil {
				return got, fmt.Errorf("GET %s: %w", u, err)
			}
			if total >= 0 && t != total {
				return got, fmt.Errorf("GET %s: size changed from %d to %d between ranges", u, total, t)
			}
			total = t
			if got >= total {
				return got, nil
			}
		default:
			return got, fmt.Errorf("GET %s: %s", u, resp.Status)
		}
	}
}

// rangeTotal parses the complete length of "bytes a-b/total".
func rangeTotal(cr string) (int64, error) {
	_, t, ok := strings.Cut(cr, "/")
	if !ok || !strings.HasPrefix(cr, "bytes ") {
		return 0, fmt.Errorf("bad Content-Range %q", cr)
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, errors.New("Content-Range without total: " + cr)
	}
	return n, nil
}
