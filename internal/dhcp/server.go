package dhcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/quirk"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
)

// Mode is how fleetboot takes part in DHCP.
type Mode string

// DHCP modes.
const (
	// ModeProxy answers only network-boot clients, with boot options and no address
	// (ProxyDHCP, PXE spec §2.2.3); the site's DHCP server keeps handing out addresses.
	ModeProxy Mode = "proxy"
	// ModeFull is an authoritative DHCP server for the pool, boot options included.
	ModeFull Mode = "full"
	// ModeOff runs no DHCP server; the site's DHCP server points machines at fleetboot.
	ModeOff Mode = "off"
)

// Defaults applied by New.
const (
	DefaultHTTPBootFile = ipxe.UEFISnp
	DefaultLeaseTime    = time.Hour
	// DefaultMaxInFlight bounds the packets handled at once. A REQUEST's handler waits for its
	// lease's commit: 5 ms normally, but a write stalled by other I/O on the host (seen: a few
	// hundred ms) keeps every ACK of that time waiting, and at 6000 exchanges a second 256
	// slots filled and half the exchanges were dropped with the CPU half idle. A waiting
	// handler costs a parked goroutine; what exceeds the bound is still dropped, never queued.
	DefaultMaxInFlight = 1024
	// DefaultTimelineQueue is how many timeline events may wait for Config.Timeline: a mass
	// power-on of a few thousand machines, each a handful of packets, fits while the database
	// catches up.
	DefaultTimelineQueue = 4096
	// maxTimelineBatch bounds one Config.Timeline call (one database transaction).
	maxTimelineBatch = 256
)

// Timing of full mode.
const (
	// offerHold is how long an OFFER reserves its address. Clients REQUEST within a second or
	// two; a minute covers slow firmware retrying, and an unanswered offer frees quickly.
	offerHold = 60 * time.Second
	// declineHold quarantines an address a client reported in use (DHCPDECLINE), as dnsmasq
	// does, so a squatting host does not make every new client decline in turn.
	declineHold = 10 * time.Minute
	// maxPoolSize bounds allocation cost (a walk over the pool's rows).
	maxPoolSize = 1 << 16
)

// Config configures the DHCP server. Zero values get the defaults above.
type Config struct {
	// Mode is proxy or full ("off" must not reach New).
	Mode Mode
	// Interface is the device to serve on, e.g. "br0"; sockets are bound to it.
	Interface string
	// ServerIP is our IPv4 address on Interface: siaddr, option 54 and option 66.
	ServerIP net.IP
	// HTTPBase is the URL prefix machines reach fleetboot's HTTP server at, e.g.
	// "http://10.77.0.1:8080" (no trailing slash).
	HTTPBase string
	// HTTPBootFile is the x64 UEFI HTTP Boot binary under /ipxe/, default "snponly.efi".
	HTTPBootFile string
	// Arm64File is the arm64 iPXE binary name (TFTP and under /ipxe/), or "" for no arm64 offers.
	Arm64File string
	// ShimFile and ShimURLPath name the signed shim on TFTP and HTTP ("" without the signed
	// chain); OfferShim says, by client MAC, whether a UEFI x64 client gets shim instead of
	// iPXE (nil: never). It is called for UEFI x64 PXE and HTTP Boot requests only, must be
	// quick and must not block.
	ShimFile    string
	ShimURLPath string
	OfferShim   func(mac net.HardwareAddr) bool
	// ShimPath, when set, names the shim a client that is offered shim gets instead of
	// ShimFile: a path below the server root ("isopair/<ISO id>/bootx64.efi", an ISO's own
	// signed pair), handed out as the TFTP file name or below HTTPBase for HTTP Boot; ""
	// keeps ShimFile / ShimURLPath. httpBoot says the client asked over UEFI HTTP Boot.
	ShimPath func(mac net.HardwareAddr, httpBoot bool) string
	// AnswerURL says, by client MAC, which Proxmox VE answer URL full-mode replies carry in
	// option 250 ("" for none; nil: never). It is called for every full-mode offer, ACK and
	// INFORM reply, must be quick and must not block.
	AnswerURL func(mac net.HardwareAddr) string
	// PoolStart and PoolEnd bound the full-mode address range (inclusive).
	PoolStart, PoolEnd net.IP
	// Netmask of the full-mode network (the pool's subnet).
	Netmask net.IPMask
	// Router (option 3) handed out in full mode; optional.
	Router net.IP
	// DNS servers (option 6) handed out in full mode; optional.
	DNS []net.IP
	// DomainName (option 15) handed out in full mode; optional.
	DomainName string
	// LeaseTime of full-mode leases, default 1h.
	LeaseTime time.Duration
	// MaxInFlight bounds the packets handled at once, default DefaultMaxInFlight; packets
	// beyond it are dropped and reported as "dropped" events (clients retransmit).
	MaxInFlight int
	// Logger receives one line per reply (mac, arch, firmware, ip, file, xid); nil discards.
	Logger *slog.Logger
	// OnEvent, when set, is called once per reply sent and per request ignored or dropped,
	// from the goroutine that handled the packet. It must not block (metrics only).
	OnEvent func(Event)
	// Timeline, when set, receives the events that belong in a machine's timeline
	// (Event.Timeline) in batches of at most 256, oldest first, from one goroutine of the
	// server's own. The packet path only queues them: a slow Timeline (a database write) never
	// delays an answer. Timeline may keep the slice.
	Timeline func([]Event)
	// TimelineQueue bounds the events waiting for Timeline, default 4096. When it is full, new
	// events are dropped (a lost timeline line, never a lost answer) and OnTimelineDrop is
	// called; Run delivers what is queued before it returns.
	TimelineQueue  int
	OnTimelineDrop func(Event)
	// Sockets, when set, are ports already bound by Listen on Interface; Run serves and then
	// closes them. Nil: Run binds them itself.
	Sockets *Sockets
}

// EventKind is what happened to a DHCP packet: the answer sent, or why there was none.
type EventKind string

// Event kinds; EventKinds lists them (internal/metrics pre-initialises its labels from it).
const (
	EventOffer      EventKind = "offer"       // full mode: DHCPOFFER with an address
	EventAck        EventKind = "ack"         // full mode: DHCPACK with a lease
	EventNak        EventKind = "nak"         // full mode: DHCPNAK
	EventInform     EventKind = "inform"      // full mode: DHCPACK to DHCPINFORM
	EventProxyOffer EventKind = "proxy-offer" // ProxyDHCP offer: boot options only
	EventProxyAck   EventKind = "proxy-ack"   // ProxyDHCP ACK (port 4011, or a REQUEST to the proxy)
	EventIgnored    EventKind = "ignored"     // not ours to answer (not a boot client, other server, …)
	EventDropped    EventKind = "dropped"     // malformed, or shed under load
	EventRelease    EventKind = "release"     // DHCPRELEASE
	EventDecline    EventKind = "decline"     // DHCPDECLINE
)

// EventKinds are all event kinds.
var EventKinds = []EventKind{EventOffer, EventAck, EventNak, EventInform, EventProxyOffer, EventProxyAck,
	EventIgnored, EventDropped, EventRelease, EventDecline}

// Event describes one DHCP outcome, for metrics and a machine's boot timeline.
type Event struct {
	Kind EventKind
	MAC  net.HardwareAddr
	// UUID is the client's option 97 (SMBIOS UUID) as a UUID string, "" when absent or not in
	// the 17-byte type-0 form.
	UUID string
	// Arch is option 93 named (bios, efi-x64, efi-x64-http, efi-arm64, …), "" when absent.
	Arch     string
	Firmware Firmware
	// IP is the address offered, acknowledged, released or declined, if any.
	IP net.IP
	// BootFile is the boot file or URL sent, if any.
	BootFile string
	// Port is the local port the request came in on (67 or 4011).
	Port int
	// Reason says why a request was ignored, dropped or NAKed.
	Reason string
	// Quirk, when set, names the network problem an ignored request revealed (Reason says
	// what was seen).
	Quirk quirk.Kind
	// Time is when the event happened, set for the events queued for Config.Timeline: the
	// timeline writes them in batches, and the line's time must be the packet's, not the
	// batch's (iPXE asks for its script tens of milliseconds after its ACK).
	Time time.Time
}

// Server is fleetboot's DHCPv4 server. Create it with New, run it with Run.
type Server struct {
	cfg      Config
	leases   LeaseStore
	log      *slog.Logger
	boot     bootConfig // decisions for port 67
	boot4011 bootConfig // decisions for port 4011 (always ProxyDHCP)
	pool     Pool
	subnet   *net.IPNet // full mode: the pool's network
	now      func() time.Time
	sem      chan struct{}
	// shedAt is how many packets in flight make new DISCOVERs be dropped (serve); the reasons
	// are built once, not per dropped packet.
	shedAt                 int
	shedReason, fullReason string
	running                atomic.Bool
	// handlers counts the handler goroutines serve started, over all its sockets.
	handlers atomic.Int64
	// timeline queues events for Config.Timeline (nil without one); dropped counts what a
	// full queue refused.
	timeline chan Event
	dropped  atomic.Uint64
	foreign  foreignServers // other DHCP servers seen lately (rogue.go)
}

// New validates cfg, applies defaults and returns a server ready to Run. Full mode needs
// leases; proxy mode ignores it.
func New(cfg Config, leases LeaseStore) (*Server, error) {
	if cfg.HTTPBootFile == "" {
		cfg.HTTPBootFile = DefaultHTTPBootFile
	}
	if cfg.LeaseTime == 0 {
		cfg.LeaseTime = DefaultLeaseTime
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.TimelineQueue == 0 {
		cfg.TimelineQueue = DefaultTimelineQueue
	}
	cfg.HTTPBase = strings.TrimRight(cfg.HTTPBase, "/")
	if len(cfg.Netmask) == net.IPv6len && net.IP(cfg.Netmask).To4() != nil {
		cfg.Netmask = cfg.Netmask[12:] // an IPv4 mask parsed into 16 bytes
	}
	if err := validate(&cfg, leases); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{
		cfg:    cfg,
		leases: leases,
		log:    log,
		now:    time.Now,
		sem:    make(chan struct{}, cfg.MaxInFlight),
		shedAt: max(1, cfg.MaxInFlight*3/4),
	}
	s.shedReason = fmt.Sprintf("%d packets in flight: new DISCOVERs shed to finish exchanges in progress", s.shedAt)
	s.fullReason = fmt.Sprintf("more than %d packets in flight", cfg.MaxInFlight)
	if cfg.Timeline != nil {
		s.timeline = make(chan Event, cfg.TimelineQueue)
	}
	s.boot = bootConfig{
		ServerIP:     cfg.ServerIP.To4(),
		HTTPBase:     cfg.HTTPBase,
		HTTPBootFile: cfg.HTTPBootFile,
		Arm64File:    cfg.Arm64File,
		Proxy:        cfg.Mode == ModeProxy,
		ShimFile:     cfg.ShimFile,
		ShimURLPath:  cfg.ShimURLPath,
	}
	s.boot4011 = s.boot
	s.boot4011.Proxy = true
	if cfg.Mode == ModeFull {
		s.subnet = &net.IPNet{IP: cfg.PoolStart.To4().Mask(cfg.Netmask), Mask: cfg.Netmask}
		s.pool = Pool{Start: cfg.PoolStart.To4(), End: cfg.PoolEnd.To4(), Exclude: exclusions(cfg, s.subnet)}
	}
	return s, nil
}

// validate checks cfg; messages name the flag to fix, as the user will read them.
func validate(cfg *Config, leases LeaseStore) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch cfg.Mode {
	case ModeProxy, ModeFull:
	case ModeOff:
		return errors.New("dhcp: mode off runs no DHCP server; do not start one")
	default:
		return fmt.Errorf("--dhcp must be proxy, full or off, not %q", cfg.Mode)
	}
	if cfg.Interface == "" {
		bad("--dhcp=%s needs --interface (the network the machines boot on)", cfg.Mode)
	}
	if cfg.ServerIP.To4() == nil || cfg.ServerIP.To4().Equal(net.IPv4zero) {
		bad("--dhcp=%s needs the server's IPv4 address on the interface (--advertise-ip)", cfg.Mode)
	}
	if !strings.HasPrefix(cfg.HTTPBase, "http://") && !strings.HasPrefix(cfg.HTTPBase, "https://") {
		bad("dhcp: HTTP base URL %q must start with http:// (machines fetch boot files from it)", cfg.HTTPBase)
	}
	for _, f := range []struct{ flag, v string }{{"--http-boot-file", cfg.HTTPBootFile}, {"dhcp: arm64 boot file", cfg.Arm64File}} {
		if strings.ContainsAny(f.v, "/\\ \x00") {
			bad("%s %q must be a plain file name", f.flag, f.v)
		}
	}
	if cfg.MaxInFlight < 0 {
		bad("dhcp: MaxInFlight %d must be positive", cfg.MaxInFlight)
	}
	if cfg.TimelineQueue < 0 {
		bad("dhcp: TimelineQueue %d must be positive", cfg.TimelineQueue)
	}
	if cfg.Mode == ModeFull {
		validateFull(cfg, leases, bad)
	}
	return errors.Join(errs...)
}

func validateFull(cfg *Config, leases LeaseStore, bad func(string, ...any)) {
	if leases == nil {
		bad("dhcp: full mode needs a lease store")
	}
	start, end := cfg.PoolStart.To4(), cfg.PoolEnd.To4()
	if start == nil || end == nil {
		bad("--dhcp=full needs --pool START-END (e.g. --pool 10.0.0.100-10.0.0.199)")
		return
	}
	s, _ := ipToUint(start)
	e, _ := ipToUint(end)
	if s > e {
		bad("--pool %s-%s: start is after end", start, end)
		return
	}
	if e-s >= maxPoolSize {
		bad("--pool %s-%s holds %d addresses; at most %d are supported", start, end, uint64(e-s)+1, maxPoolSize)
	}
	ones, bits := cfg.Netmask.Size()
	if bits != 32 || ones == 0 {
		bad("--dhcp=full needs --netmask (an IPv4 mask such as 255.255.255.0)")
		return
	}
	if !start.Mask(cfg.Netmask).Equal(end.Mask(cfg.Netmask)) {
		bad("--pool %s-%s spans more than one /%d network", start, end, ones)
	}
	if cfg.Router != nil && cfg.Router.To4() == nil {
		bad("--router %s is not an IPv4 address", cfg.Router)
	}
	for _, d := range cfg.DNS {
		if d.To4() == nil {
			bad("--dns %s is not an IPv4 address", d)
		}
	}
	if cfg.LeaseTime < time.Minute {
		bad("--lease-time %s is too short (at least 1m)", cfg.LeaseTime)
	}
}

// exclusions lists the pool addresses never to hand out.
func exclusions(cfg Config, subnet *net.IPNet) []net.IP {
	ex := []net.IP{cfg.ServerIP.To4(), subnet.IP.To4()}
	bcast := make(net.IP, net.IPv4len)
	for i := range bcast {
		bcast[i] = subnet.IP.To4()[i] | ^subnet.Mask[i]
	}
	ex = append(ex, bcast)
	if cfg.Router != nil {
		ex = append(ex, cfg.Router.To4())
	}
	for _, d := range cfg.DNS {
		ex = append(ex, d.To4())
	}
	return ex
}

// Sockets are the DHCP ports (67 and 4011) bound on one interface, with the claim on that
// interface that keeps a second fleetboot off it.
type Sockets struct {
	lock  io.Closer
	conns []*net.UDPConn // portServer, portPXE
	// watch sees other DHCP servers' broadcast replies (port 68); nil when it could not be
	// bound (watchErr says why): fleetboot then serves without rogue DHCP detection.
	watch    *net.UDPConn
	watchErr error
}

// Listen claims iface and binds ports 67 and 4011 on it, without serving. It fails when
// another fleetboot already serves DHCP on the interface in this network namespace, or when a
// port is taken (another DHCP server); the message names the flags that avoid the conflict.
//
// Sockets are created in the network namespace of the calling OS thread.
func Listen(iface string) (*Sockets, error) {
	lock, err := lockInterface(iface)
	if err != nil {
		return nil, err
	}
	socks := &Sockets{lock: lock}
	// Quirk (server4): its sockets set SO_REUSEPORT, so a second server on the same port binds
	// without error and the kernel splits packets between the two. The lock above is what
	// prevents that; a DHCP server that does not set SO_REUSEPORT (dnsmasq) makes this fail.
	for _, port := range []int{portServer, portPXE} {
		c, err := server4.NewIPv4UDPConn(iface, &net.UDPAddr{Port: port})
		if err != nil {
			socks.Close()
			// server4 formats the bind error with %v: match the errno's text too.
			if errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), syscall.EADDRINUSE.Error()) {
				return nil, fmt.Errorf("dhcp: UDP port %d on %s is already in use by another DHCP server "+
					"(dnsmasq, dhcpd, kea?): stop it, or start fleetboot with --dhcp off and point that "+
					"server at fleetboot (README, \"Pointing an existing DHCP server at fleetboot\"), "+
					"or serve another --interface: %w", port, iface, err)
			}
			return nil, fmt.Errorf("dhcp: listen on %s port %d (is another DHCP server running there? "+
				"--dhcp off runs without DHCP): %w", iface, port, err)
		}
		socks.conns = append(socks.conns, c)
	}
	socks.watch, socks.watchErr = listenWatch(iface)
	return socks, nil
}

// Close releases the ports and the claim on the interface.
func (s *Sockets) Close() error {
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
	if s.watch != nil {
		s.watch.Close()
		s.watch = nil
	}
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
	return nil
}

// Run serves until ctx is done, then closes its sockets and waits for in-flight packets.
// Without Config.Sockets it binds them first with Listen and fails at once as Listen does.
//
// Sockets are created in the network namespace of the calling OS thread.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("dhcp: server already running")
	}
	defer s.running.Store(false)

	socks := s.cfg.Sockets
	if socks == nil {
		var err error
		if socks, err = Listen(s.cfg.Interface); err != nil {
			return err
		}
	}
	defer socks.Close()
	conns := socks.conns
	s.log.Info("dhcp serving", "mode", string(s.cfg.Mode), "interface", s.cfg.Interface,
		"server_ip", s.cfg.ServerIP.String(), "ports", "67,4011")

	// The timeline writer outlives the packet handlers: it stops only once they are done and
	// it has delivered everything they queued.
	stopTimeline, timelineDone := make(chan struct{}), make(chan struct{})
	go s.deliverTimeline(stopTimeline, timelineDone)
	defer func() {
		close(stopTimeline)
		<-timelineDone
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var watching sync.WaitGroup
	if w := socks.watch; w != nil {
		watching.Add(1)
		go func() { defer watching.Done(); s.watchForeign(ctx, w) }()
		defer func() { w.Close(); watching.Wait() }()
	} else {
		s.log.Warn("dhcp: cannot watch for other DHCP servers on this segment (UDP 255.255.255.255:68); serving without rogue DHCP detection",
			"interface", s.cfg.Interface, "err", socks.watchErr)
	}
	if s.cfg.Mode == ModeFull {
		// Before the first answer: a partner must know this server when it sees its replies.
		failing := s.announceOnce(ctx, false)
		watching.Add(1)
		go func() { defer watching.Done(); s.announce(ctx, failing) }()
	}
	var handlers sync.WaitGroup
	errc := make(chan error, len(conns))
	for i, c := range conns {
		port := []int{portServer, portPXE}[i]
		go func() { errc <- s.serve(ctx, c, port, &handlers) }()
	}
	pending := len(conns)
	var firstErr error
	select {
	case <-ctx.Done():
	case firstErr = <-errc:
		pending--
	}
	cancel()
	for _, c := range conns {
		c.Close()
	}
	for ; pending > 0; pending-- {
		if err := <-errc; firstErr == nil {
			firstErr = err
		}
	}
	handlers.Wait()
	return firstErr
}

// serve reads packets from c until it is closed. Each packet is handled on a goroutine of its
// own while it is handled, at most MaxInFlight at once; when all slots are busy the packet is dropped rather than
// queued, since a DHCP client retransmits and a late answer is worth less than a current one.
// DISCOVERs are dropped first, once three quarters of the slots are busy: under overload the
// capacity goes to REQUESTs, which complete exchanges already offered, rather than to new
// offers whose REQUESTs would then be dropped — so the completed rate stays at capacity
// instead of falling as the offered rate grows (issue 13).
// (server4.Server would spawn a goroutine per packet without bound, hence our own loop.)
func (s *Server) serve(ctx context.Context, c *net.UDPConn, port int, handlers *sync.WaitGroup) error {
	buf := make([]byte, 4096)
	// Handlers live on after their packet and take the next one from jobs: a new goroutine
	// per packet grew its stack through the database and packet code each time (morestack was
	// 5 % of the CPU under a flood). One is started only when none is idle, so there are at
	// most MaxInFlight; they end when serve returns. A handler gives back its slot before it
	// asks for the next job, so with all of them started a free slot means one is on its way
	// to jobs: the reader then waits for it instead of starting one more.
	jobs := make(chan job)
	defer close(jobs)
	started := 0
	for {
		n, peer, err := c.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("dhcp: read on %s port %d: %w", s.cfg.Interface, port, err)
		}
		if reason := s.admit(buf[:n]); reason != "" {
			s.emit(Event{Kind: EventDropped, MAC: rawChaddr(buf[:n]), Firmware: FirmwareOther, Port: port, Reason: reason})
			continue
		}
		j := job{pkt: append([]byte(nil), buf[:n]...), peer: peer}
		select {
		case jobs <- j: // an idle handler takes it
			continue
		default:
		}
		if started == cap(s.sem) {
			jobs <- j
		} else {
			started++
			s.handlers.Add(1)
			handlers.Add(1)
			go func() {
				defer handlers.Done()
				for ok := true; ok; j, ok = <-jobs {
					s.handlePacket(ctx, c, j.pkt, j.peer, port)
					<-s.sem
				}
			}()
		}
	}
}

// job is one admitted packet for a handler.
type job struct {
	pkt  []byte
	peer *net.UDPAddr
}

// admit takes an in-flight slot for pkt, or says why it is dropped (see serve).
func (s *Server) admit(pkt []byte) (dropReason string) {
	if n := len(s.sem); n >= s.shedAt && n < cap(s.sem) && rawMessageType(pkt) == dhcpv4.MessageTypeDiscover {
		return s.shedReason
	}
	select {
	case s.sem <- struct{}{}:
		return ""
	default:
		return s.fullReason
	}
}

// handlePacket parses, decides, sends and reports one packet.
func (s *Server) handlePacket(ctx context.Context, c *net.UDPConn, pkt []byte, peer *net.UDPAddr, port int) {
	m, err := dhcpv4.FromBytes(pkt)
	// dhcpv4 cuts an hlen beyond chaddr's 16 bytes down to 16 and parses on; such a packet is
	// no client's (Ethernet sends 6), and answering it would record a 16-byte "MAC".
	if err == nil && len(pkt) > 2 && pkt[2] > 16 {
		err = fmt.Errorf("hlen %d exceeds the 16 bytes of chaddr", pkt[2])
	}
	if err != nil {
		ev := Event{Kind: EventIgnored, MAC: rawChaddr(pkt), Firmware: FirmwareOther, Port: port,
			Reason: "malformed packet: " + err.Error()}
		s.log.Debug("dhcp ignored", "mac", ev.MAC.String(), "port", port, "from", peer.String(), "reason", ev.Reason)
		s.emit(ev)
		return
	}
	res := s.respond(ctx, m, peer, port)
	if res.reply != nil {
		if _, err := c.WriteToUDP(res.reply.ToBytes(), res.dst); err != nil {
			s.log.Warn("dhcp send failed", "kind", res.ev.Kind, "mac", res.ev.MAC.String(),
				"xid", m.TransactionID.String(), "dst", res.dst.String(), "err", err)
			res.ev = Event{Kind: EventIgnored, MAC: res.ev.MAC, Arch: res.ev.Arch, Firmware: res.ev.Firmware,
				Port: port, Reason: "send failed: " + err.Error()}
		}
	}
	s.report(m, res)
}

// response is the outcome of one request: a reply to send (or nil) and the event to report.
type response struct {
	reply *dhcpv4.DHCPv4
	dst   *net.UDPAddr
	ev    Event
}

// respond decides what to answer to m, which arrived on port from peer. It has no socket: the
// caller sends.
func (s *Server) respond(ctx context.Context, m *dhcpv4.DHCPv4, peer *net.UDPAddr, port int) response {
	ci := classifyClient(m)
	if m.OpCode != dhcpv4.OpcodeBootRequest {
		return s.ignore(ci, port, "not a BOOTREQUEST")
	}
	if port == portPXE {
		return s.respondPXEPort(ci, m, peer)
	}
	if s.cfg.Mode == ModeFull {
		return s.respondFull(ctx, ci, m, peer)
	}
	return s.respondProxy(ci, m, peer)
}

// reply assembles a response with its event.
func (s *Server) reply(ci clientInfo, m *dhcpv4.DHCPv4, kind replyKind, port int, peer *net.UDPAddr,
	plan bootPlan, lease leaseOptions) response {
	r := buildReply(m, kind, s.cfg.ServerIP, plan, lease)
	ev := s.event(ci, kind.event(), port)
	if kind != kindInformAck {
		ev.IP = nonZeroIPv4(r.YourIPAddr)
	} else {
		ev.IP = ci.ClientIP
	}
	if plan.Boot {
		ev.BootFile = plan.BootFile
	}
	return response{reply: r, dst: replyDestination(m, kind, port, peer), ev: ev}
}

func (s *Server) ignore(ci clientInfo, port int, reason string) response {
	ev := s.event(ci, EventIgnored, port)
	ev.Reason = reason
	return response{ev: ev}
}

// quirk ignores a request that shows a network problem and names it in the event.
func (s *Server) quirk(ci clientInfo, port int, k quirk.Kind, reason string) response {
	res := s.ignore(ci, port, reason)
	res.ev.Quirk = k
	return res
}

func (s *Server) event(ci clientInfo, kind EventKind, port int) Event {
	return Event{Kind: kind, MAC: ci.MAC, UUID: ci.UUID, Arch: ci.archName(), Firmware: ci.firmware(), Port: port}
}

// report logs the outcome and hands the event to OnEvent.
func (s *Server) report(m *dhcpv4.DHCPv4, res response) {
	ev := res.ev
	level := slog.LevelInfo
	switch ev.Kind {
	case EventIgnored:
		// Proxy mode sees every DHCP packet on the LAN; ignoring is the normal case.
		level = slog.LevelDebug
	case EventDecline, EventNak:
		level = slog.LevelWarn
	}
	if !s.log.Enabled(context.Background(), level) {
		// The line's fields cost allocations per packet: build them only to be written.
		s.emit(ev)
		return
	}
	attrs := []any{"kind", ev.Kind, "mac", ev.MAC.String(), "arch", ev.Arch, "firmware", ev.Firmware,
		"xid", m.TransactionID.String(), "dhcp_msg", m.MessageType().String(), "port", ev.Port}
	if ev.IP != nil {
		attrs = append(attrs, "ip", ev.IP.String())
	}
	if ev.BootFile != "" {
		attrs = append(attrs, "file", ev.BootFile)
	}
	if res.dst != nil {
		attrs = append(attrs, "dst", res.dst.String())
	}
	if ev.Reason != "" {
		attrs = append(attrs, "reason", ev.Reason)
	}
	s.log.Log(context.Background(), level, "dhcp "+string(ev.Kind), attrs...)
	s.emit(ev)
}

func (s *Server) emit(ev Event) {
	if ev.Kind == EventDropped && s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("dhcp dropped", "mac", ev.MAC.String(), "port", ev.Port, "reason", ev.Reason)
	}
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(ev)
	}
	if s.timeline != nil && ev.Timeline() {
		ev.Time = time.Now()
		select {
		case s.timeline <- ev:
		default:
			s.dropped.Add(1)
			if s.cfg.OnTimelineDrop != nil {
				s.cfg.OnTimelineDrop(ev)
			}
		}
	}
}

// Timeline reports whether ev is a step in the machine's boot timeline: every answer, every
// RELEASE and DECLINE fleetboot acted on, and the ignored requests that revealed a network
// quirk. Other ignored packets (everything else on the LAN in proxy mode) and drops are not.
func (ev Event) Timeline() bool {
	switch ev.Kind {
	case "ignored":
		return ev.Quirk != ""
	case "dropped":
		return false
	}
	return len(ev.MAC) > 0
}

// TimelineDropped is how many timeline events a full queue has dropped since New.
func (s *Server) TimelineDropped() uint64 { return s.dropped.Load() }

// deliverTimeline hands queued events to Config.Timeline in batches until stop is closed,
// then delivers what is still queued and closes done.
func (s *Server) deliverTimeline(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	if s.timeline == nil {
		return
	}
	for {
		select {
		case ev := <-s.timeline:
			start := time.Now()
			s.cfg.Timeline(s.batch(ev))
			s.paceTimeline(time.Since(start), stop)
		case <-stop:
			for {
				select {
				case ev := <-s.timeline:
					s.cfg.Timeline(s.batch(ev))
				default:
					return
				}
			}
		}
	}
}

// timelineShare bounds the timeline writer to 1/timelineShare of the time while it has a
// backlog and packets are being answered.
const timelineShare = 8

// timelineInterval is the shortest time from one timeline batch to the next.
const timelineInterval = 20 * time.Millisecond

// paceTimeline pauses the timeline writer after a batch that took d: until timelineInterval
// has passed, and longer when events are still queued and packets are being handled. The
// writer is a database transaction on the same CPU as the answers, and under a flood it
// always has a backlog — without a pause it took half the CPU and more, and the answer rate
// fell with it (issue 13). Paused, it lets the answers have the rest; its queue fills and
// drops (counted, OnTimelineDrop), and the next batches are larger, so cheaper per event.
func (s *Server) paceTimeline(d time.Duration, stop <-chan struct{}) {
	// Batches at most every timelineInterval: a transaction per handful of events cost more
	// in commits than in the events (timeline events show in the UI 20 ms later).
	pause := timelineInterval - d
	if len(s.timeline) > 0 && len(s.sem) > 0 {
		pause = max(pause, min(d*(timelineShare-1), time.Second))
	}
	if pause <= 0 {
		return
	}
	t := time.NewTimer(pause)
	defer t.Stop()
	select {
	case <-t.C:
	case <-stop:
	}
}

// batch returns first and whatever else is queued, up to maxTimelineBatch events.
func (s *Server) batch(first Event) []Event {
	b := []Event{first}
	for len(b) < maxTimelineBatch {
		select {
		case ev := <-s.timeline:
			b = append(b, ev)
		default:
			return b
		}
	}
	return b
}

// Leases returns the full-mode lease table (nil in proxy mode).
func (s *Server) Leases(ctx context.Context) ([]Lease, error) {
	if s.leases == nil || s.cfg.Mode != ModeFull {
		return nil, nil
	}
	return s.leases.List(ctx)
}

// PoolUsage is how the full-mode pool is used at one moment.
type PoolUsage struct {
	// Size is the number of addresses the pool can hand out (the range minus exclusions).
	Size int
	// Active counts leases offered or bound and not expired.
	Active int
	// Free counts pool addresses nothing holds: neither an active lease nor a quarantined
	// DECLINE.
	Free int
}

// PoolUsage reports the full-mode pool's usage; the zero value in proxy mode.
func (s *Server) PoolUsage(ctx context.Context) (PoolUsage, error) {
	if s.cfg.Mode != ModeFull {
		return PoolUsage{}, nil
	}
	start, _ := ipToUint(s.pool.Start)
	end, _ := ipToUint(s.pool.End)
	u := PoolUsage{Size: int(end-start) + 1}
	seen := map[uint32]bool{}
	for _, x := range s.pool.Exclude {
		if v, ok := ipToUint(x); ok && v >= start && v <= end && !seen[v] {
			seen[v] = true
			u.Size--
		}
	}
	leases, err := s.leases.List(ctx)
	if err != nil {
		return PoolUsage{}, err
	}
	now := s.now()
	held := 0
	for _, l := range leases {
		if !l.Active(now) || !s.pool.Contains(l.IP) {
			continue
		}
		held++
		if l.State == StateOffered || l.State == StateBound {
			u.Active++
		}
	}
	u.Free = u.Size - held
	return u, nil
}

// rawMessageType finds option 53 in a packet that has not been parsed (serve decides what
// to drop before paying for parsing); MessageTypeNone when the packet has none or does not
// parse that far. Option overload (52) is not followed: such a DISCOVER counts as "other".
func rawMessageType(pkt []byte) dhcpv4.MessageType {
	const optionsOff = 240 // fixed BOOTP header (236) + magic cookie
	if len(pkt) < optionsOff || pkt[236] != 99 || pkt[237] != 130 || pkt[238] != 83 || pkt[239] != 99 {
		return dhcpv4.MessageTypeNone
	}
	for i := optionsOff; i < len(pkt); {
		code := pkt[i]
		switch code {
		case 0: // pad
			i++
			continue
		case 255: // end
			return dhcpv4.MessageTypeNone
		}
		if i+1 >= len(pkt) {
			return dhcpv4.MessageTypeNone
		}
		n := int(pkt[i+1])
		if i+2+n > len(pkt) {
			return dhcpv4.MessageTypeNone
		}
		if code == 53 && n == 1 {
			return dhcpv4.MessageType(pkt[i+2])
		}
		i += 2 + n
	}
	return dhcpv4.MessageTypeNone
}

// rawChaddr reads chaddr from a packet that may not parse, for drop/ignore events.
func rawChaddr(pkt []byte) net.HardwareAddr {
	const hlenOff, chaddrOff = 2, 28
	if len(pkt) < chaddrOff+16 {
		return nil
	}
	n := int(pkt[hlenOff])
	if n > 16 {
		n = 16
	}
	return append(net.HardwareAddr(nil), pkt[chaddrOff:chaddrOff+n]...)
}
