package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The installer payload stands in for a distribution's installer in the ISO scenarios. Like
// the real ones it reads its command line, brings up the network, fetches what the command
// line points at (the unattended file, the repository's .treeinfo, the whole ISO for casper,
// archiso's airootfs, Alpine's modloop), runs the install-done command the unattended file
// carries, and stops. It prints each step on the serial console for the test to check.
//
// The network: the Debian netboot kernel has no IP autoconfiguration built in (ip=dhcp on a
// recipe's command line is meant for the distribution's initramfs) and virtio_net is a module.
// The matching modules come out of the same package's installer initrd (same kernel build), and
// busybox's udhcpc configures the address: the DHCP lease in fleetboot's full mode is the
// address iPXE had, which the done callback requires.

// installerAndKernel returns the installer payload (the ISO scenarios' initrd) and the kernel
// that boots it, failing t when either cannot be had.
func installerAndKernel(t *testing.T) (payload, kernel []byte) {
	t.Helper()
	payload, err := installerPayload()
	if err != nil {
		t.Fatalf("build installer payload: %v", err)
	}
	kernel, err = os.ReadFile(kernelPath)
	if err != nil {
		t.Fatal(err)
	}
	return payload, kernel
}

// diInitrdPath is the debian-installer netboot initrd that belongs to kernelPath.
const diInitrdPath = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/initrd.gz" // debian-installer-12-netboot-amd64

// virtioNetModules are the modules virtio-net needs, in load order (dependencies first), as
// their depends= fields say.
var virtioNetModules = []string{
	"kernel/drivers/virtio/virtio.ko",
	"kernel/drivers/virtio/virtio_ring.ko",
	"kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
	"kernel/drivers/virtio/virtio_pci_modern_dev.ko",
	"kernel/drivers/virtio/virtio_pci.ko",
	"kernel/net/core/failover.ko",
	"kernel/drivers/net/net_failover.ko",
	"kernel/drivers/net/virtio_net.ko",
}

// usbDiskModules give the payload a USB disk (fbdisk=), in load order: sd_mod needs t10-pi and
// its CRCs; the xHCI host driver and usb-storage sit on usbcore.
var usbDiskModules = []string{
	"kernel/drivers/scsi/scsi_common.ko",
	"kernel/drivers/scsi/scsi_mod.ko",
	"kernel/crypto/crct10dif_common.ko",
	"kernel/lib/crc-t10dif.ko",
	"kernel/lib/crc64.ko",
	"kernel/lib/crc64-rocksoft.ko",
	"kernel/block/t10-pi.ko",
	"kernel/drivers/scsi/sd_mod.ko",
	"kernel/drivers/usb/common/usb-common.ko",
	"kernel/drivers/usb/core/usbcore.ko",
	"kernel/drivers/usb/host/xhci-hcd.ko",
	"kernel/drivers/usb/host/xhci-pci.ko",
	"kernel/drivers/usb/storage/usb-storage.ko",
}

// bootSector is what the payload installs on a disk (fbdisk=): a BIOS boot sector whose code
// prints the NUL-terminated text at offset bootSectorText on COM1 and halts. The payload puts
// "FLEETBOOT-LOCAL-DISK <token>" there, so a machine that later prints it has booted the disk
// this install wrote. Hand-assembled 16-bit code, loaded by the BIOS at 0000:7C00:
//
//	fa           cli                    ; no BIOS code runs from here on (see below)
//	fc           cld
//	31 c0        xor  ax, ax
//	8e d8        mov  ds, ax
//	be 40 7c     mov  si, 0x7c40         ; the text
//	ba f8 03     mov  dx, 0x3f8          ; COM1's data port (QEMU's UART needs no set-up)
//	ac           next: lodsb
//	84 c0        test al, al
//	74 03        jz   stop
//	ee           out  dx, al
//	eb f8        jmp  next
//	f4           stop: hlt
//	eb fd        jmp  stop
//
// Firmware fact (seen here once in four runs): SeaBIOS's serial mirror of the BIOS console
// (etc/sercon-port) writes part of what iPXE prints lazily, so the last characters before the
// jump to the boot sector may never reach the serial port — iPXE's "Booting from SAN device
// 0x80" lost its final "0", the sector's text followed at once. Hence the test looks for this
// text rather than iPXE's last line, and cli first, so that no BIOS code (a timer interrupt)
// can run and write in the middle of it.
func bootSector() []byte {
	b := make([]byte, 512)
	copy(b, []byte{0xfa, 0xfc, 0x31, 0xc0, 0x8e, 0xd8, 0xbe, 0x40, 0x7c, 0xba, 0xf8, 0x03,
		0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb, 0xf8, 0xf4, 0xeb, 0xfd})
	b[510], b[511] = 0x55, 0xaa
	return b
}

// bootSectorText is where bootSector's text starts (0x7c40 - 0x7c00); installerInit's dd
// seeks there (TestInstallerPayloadCarriesTheVirtioNetModules checks they agree).
const bootSectorText = 0x40

// installerInit is /init of the installer payload. Markers (all at the start of a line):
//
//	FLEETBOOT-CMDLINE <cmdline>
//	FLEETBOOT-NET <address>|none
//	FLEETBOOT-UNATTENDED-URL <option> <url>
//	FLEETBOOT-UNATTENDED <first line of the file>      (and -META for cloud-init's meta-data)
//	FLEETBOOT-FETCH <what> <bytes> <url>               (what the installer would download)
//	FLEETBOOT-DISK <device> written|missing|failed …   (fbdisk=<device>: the boot sector installed)
//	FLEETBOOT-DONE <exit status> <server's answer>
//	FLEETBOOT-TOKEN <token>                            (last: everything above is complete)
//
// The unattended file's line that calls /boot/done/ (the profile template's {{.DoneCommand}})
// is run as it is, like a kickstart %post would run it.
const installerInit = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox dmesg -n 1
/bin/busybox --install -s /bin
export PATH=/bin
say() { echo "$*" >/dev/ttyS0; }
cmdline=$(cat /proc/cmdline)
say "FLEETBOOT-CMDLINE $cmdline"
token= uopt= uurl= seed= srv= base=archiso disk=
fetches=
for word in $cmdline; do
	case "$word" in
	fbtoken=*) token="${word#fbtoken=}" ;;
	fbdisk=*) disk="${word#fbdisk=}" ;;
	inst.ks=*) uopt=inst.ks uurl="${word#inst.ks=}" ;;
	url=*/unattended/*) uopt=url uurl="${word#url=}" ;;
	url=*.iso) fetches="$fetches iso=${word#url=}" ;;
	ds=nocloud-net\;s=*) uopt=ds seed="${word#ds=nocloud-net;s=}" uurl="${seed}user-data" ;;
	script=*) uopt=script uurl="${word#script=}" ;;
	apkovl=*) uopt=apkovl uurl="${word#apkovl=}" ;;
	autoyast=*) uopt=autoyast uurl="${word#autoyast=}" ;;
	inst.repo=*) fetches="$fetches treeinfo=${word#inst.repo=}.treeinfo" ;;
	inst.stage2=*) fetches="$fetches treeinfo=${word#inst.stage2=}.treeinfo" ;;
	archiso_http_srv=*) srv="${word#archiso_http_srv=}" ;;
	archisobasedir=*) base="${word#archisobasedir=}" ;;
	modloop=*) fetches="$fetches modloop=${word#modloop=}" ;;
	alpine_repo=*) fetches="$fetches apkindex=${word#alpine_repo=}/x86_64/APKINDEX.tar.gz" ;;
	esac
done
[ -n "$srv" ] && fetches="$fetches airootfs=${srv}${base}/x86_64/airootfs.sfs"
if [ -n "$uurl$fetches" ]; then
	for m in ` + "`cat /modules.order`" + `; do insmod "/modules/$m"; done
	i=0
	while ! ip link show eth0 >/dev/null 2>&1 && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
	ip link set lo up
	ip link set eth0 up
	timeout 60 udhcpc -i eth0 -s /udhcpc.script -q -n -t 20 -T 2 -f >/dev/null 2>&1
	addr=$(ip -4 -o addr show dev eth0 | awk '{print $4}')
	say "FLEETBOOT-NET ${addr:-none}"
fi
for f in $fetches; do
	n=$(timeout 60 wget -q -O- "${f#*=}" 2>/dev/null | wc -c)
	say "FLEETBOOT-FETCH ${f%%=*} $n ${f#*=}"
done
if [ -n "$disk" ]; then
	for m in ` + "`cat /modules-disk.order`" + `; do insmod "/modules/$m"; done
	# The device node appears before the disk may be written: wait for a size too.
	ready() { [ -b "$disk" ] && [ "$(cat /sys/class/block/${disk#/dev/}/size 2>/dev/null || echo 0)" != 0 ]; }
	i=0
	while ! ready && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
	cp /bootsector.bin /sector
	printf 'FLEETBOOT-LOCAL-DISK %s\r\n' "$token" | dd of=/sector bs=1 seek=64 conv=notrunc 2>/dev/null
	# One whole-sector write, read back past the page cache; a few tries, then say so.
	result=missing i=0
	while [ -b "$disk" ] && [ $i -lt 10 ]; do
		err=$(dd if=/sector of="$disk" bs=512 count=1 conv=notrunc 2>&1 >/dev/null) && sync &&
			echo 3 >/proc/sys/vm/drop_caches && dd if="$disk" bs=512 count=1 2>/dev/null | cmp -s - /sector &&
			{ result=written; break; }
		result="failed ($(echo ${err:-read back differs} | tr '\n' ' '))"
		say "FLEETBOOT-DISK-RETRY $disk $result"
		sleep 1; i=$((i+1))
	done
	say "FLEETBOOT-DISK $disk $result"
fi
if [ -n "$uurl" ]; then
	say "FLEETBOOT-UNATTENDED-URL $uopt $uurl"
	timeout 60 wget -q -O /unattended "$uurl" 2>/dev/null || say "FLEETBOOT-UNATTENDED-FAILED $?"
	say "FLEETBOOT-UNATTENDED $(head -n 1 /unattended)"
	if [ -n "$seed" ]; then
		timeout 60 wget -q -O /meta-data "${seed}meta-data" 2>/dev/null
		say "FLEETBOOT-UNATTENDED-META $(head -n 1 /meta-data)"
	fi
	grep -m 1 /boot/done/ /unattended >/done.sh
	answer=$(timeout 60 sh /done.sh 2>/dev/null)
	status=$?
	say "FLEETBOOT-DONE $status $(echo $answer | tr -d '\r\n')"
fi
say "FLEETBOOT-TOKEN ${token:-missing}"
sync
poweroff -f
`

// udhcpcScript applies the lease udhcpc got (busybox passes it in the environment).
const udhcpcScript = `#!/bin/busybox sh
case "$1" in
bound|renew) /bin/busybox ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}" up ;;
esac
`

// installerPayload builds the installer payload once per test binary: the unit test below and
// the ISO scenarios share it (under -race and next to booting VMs a build takes many seconds).
var installerPayload = sync.OnceValues(func() ([]byte, error) {
	return buildInstallerInitramfs(busyboxPath, diInitrdPath)
})

// buildInstallerInitramfs returns the gzip-compressed installer payload: static busybox, the
// virtio-net modules taken out of diInitrd, and installerInit.
func buildInstallerInitramfs(busyboxPath, diInitrd string) ([]byte, error) {
	if err := checkStatic(busyboxPath); err != nil {
		return nil, err
	}
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w", err)
	}
	mods, err := extractModules(diInitrd, append(append([]string{}, virtioNetModules...), usbDiskModules...))
	if err != nil {
		return nil, err
	}
	entries := []cpioEntry{
		{name: "bin", mode: cpioDir | 0o755},
		{name: "bin/busybox", mode: cpioRegular | 0o755, data: bb},
		{name: "bin/sh", mode: cpioSymlink | 0o777, data: []byte("busybox")},
		{name: "dev", mode: cpioDir | 0o755},
		{name: "dev/console", mode: cpioCharDev | 0o600, rdevMajor: 5, rdevMinor: 1},
		{name: "dev/ttyS0", mode: cpioCharDev | 0o660, rdevMajor: 4, rdevMinor: 64},
		{name: "proc", mode: cpioDir | 0o755},
		{name: "sys", mode: cpioDir | 0o755},
		{name: "modules", mode: cpioDir | 0o755},
		{name: "udhcpc.script", mode: cpioRegular | 0o755, data: []byte(udhcpcScript)},
		{name: "init", mode: cpioRegular | 0o755, data: []byte(installerInit)},
		{name: "bootsector.bin", mode: cpioRegular | 0o644, data: bootSector()},
	}
	for _, set := range []struct {
		order   string
		modules []string
	}{{"modules.order", virtioNetModules}, {"modules-disk.order", usbDiskModules}} {
		var order []string
		for _, m := range set.modules {
			name := path.Base(m)
			order = append(order, name)
			entries = append(entries, cpioEntry{name: "modules/" + name, mode: cpioRegular | 0o644, data: mods[m]})
		}
		entries = append(entries, cpioEntry{name: set.order, mode: cpioRegular | 0o644, data: []byte(strings.Join(order, "\n") + "\n")})
	}
	return gzipNewc(entries, gzip.DefaultCompression)
}

// extractModules reads the gzip-compressed newc initrd at p and returns the modules named by
// their path below lib/modules/<version>/, whatever the version.
func extractModules(p string, want []string) (map[string][]byte, error) {
	// gzip(1) inflates: Go's inflater under -race takes seconds for these 40 MB, next to
	// booting VMs much longer.
	cmd := exec.Command("gzip", "-dc", p)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("installer initrd: gzip: %w", err)
	}
	defer func() {
		cmd.Process.Kill() // reading stops early: gzip may still be writing
		cmd.Wait()
	}()
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w] = true
	}
	got := map[string][]byte{}
	// The modules sit in the last quarter of the 40 MB archive; stop reading once all are in.
	errAllFound := errors.New("all modules found")
	err = readNewc(out, func(name string, mode uint32, data func() ([]byte, error)) error {
		rest, ok := strings.CutPrefix(name, "lib/modules/")
		if !ok {
			return nil
		}
		_, rel, ok := strings.Cut(rest, "/")
		if !ok || !wanted[rel] || mode&0o170000 != cpioRegular {
			return nil
		}
		b, err := data()
		if err != nil {
			return err
		}
		got[rel] = b
		if len(got) == len(wanted) {
			return errAllFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errAllFound) {
		return nil, fmt.Errorf("installer initrd %s: %w (%s)", p, err, strings.TrimSpace(stderr.String()))
	}
	for _, w := range want {
		if got[w] == nil {
			return nil, fmt.Errorf("installer initrd %s has no lib/modules/*/%s", p, w)
		}
	}
	return got, nil
}

// maxNewcMember bounds what readNewc hands out: the modules needed are far below it.
const maxNewcMember = 64 << 20

// readNewc walks a newc ("070701") archive, calling fn for each member until TRAILER!!!. fn
// gets the member's data through a function so that members it does not want are skipped
// without being kept.
func readNewc(r io.Reader, fn func(name string, mode uint32, data func() ([]byte, error)) error) error {
	br := bufio.NewReader(r)
	var off int64
	skip := func(n int64) error {
		m, err := io.CopyN(io.Discard, br, n)
		off += m
		return err
	}
	align := func() error { return skip((4 - off%4) % 4) }
	hdr := make([]byte, 110)
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			return fmt.Errorf("cpio header at %d: %w", off, err)
		}
		off += int64(len(hdr))
		if string(hdr[:6]) != "070701" && string(hdr[:6]) != "070702" {
			return fmt.Errorf("cpio header at %d: magic %q, want newc", off-110, hdr[:6])
		}
		field := func(i int) (uint64, error) {
			return strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
		}
		mode, err1 := field(1)
		size, err2 := field(6)
		nameSize, err3 := field(11)
		if err := errors.Join(err1, err2, err3); err != nil {
			return fmt.Errorf("cpio header at %d: %w", off-110, err)
		}
		if nameSize == 0 || nameSize > 4096 {
			return fmt.Errorf("cpio header at %d: name size %d", off-110, nameSize)
		}
		nb := make([]byte, nameSize)
		if _, err := io.ReadFull(br, nb); err != nil {
			return fmt.Errorf("cpio name at %d: %w", off, err)
		}
		off += int64(nameSize)
		name := strings.TrimRight(string(nb), "\x00")
		if err := align(); err != nil {
			return err
		}
		if name == "TRAILER!!!" {
			return nil
		}
		read := false
		data := func() ([]byte, error) {
			if read {
				return nil, errors.New("member data read twice")
			}
			if size > maxNewcMember {
				return nil, fmt.Errorf("%s: %d bytes is too large", name, size)
			}
			read = true
			b := make([]byte, size)
			n, err := io.ReadFull(br, b)
			off += int64(n)
			return b, err
		}
		if err := fn(name, uint32(mode), data); err != nil {
			return err
		}
		if !read {
			if err := skip(int64(size)); err != nil {
				return fmt.Errorf("cpio data of %s: %w", name, err)
			}
		}
		if err := align(); err != nil {
			return err
		}
	}
}

func TestReadNewcReadsWhatWriteNewcWrote(t *testing.T) {
	entries := []cpioEntry{
		{name: "lib", mode: cpioDir | 0o755},
		{name: "lib/modules/6.1.0-x/kernel/a.ko", mode: cpioRegular | 0o644, data: []byte("abc")},
		{name: "lib/modules/6.1.0-x/kernel/b.ko", mode: cpioRegular | 0o644, data: bytes.Repeat([]byte{7}, 4097)},
		{name: "link", mode: cpioSymlink | 0o777, data: []byte("lib")},
	}
	var buf bytes.Buffer
	if err := writeNewc(&buf, entries); err != nil {
		t.Fatal(err)
	}
	var names []string
	got := map[string][]byte{}
	err := readNewc(bytes.NewReader(buf.Bytes()), func(name string, mode uint32, data func() ([]byte, error)) error {
		names = append(names, name)
		if strings.HasSuffix(name, "b.ko") { // a.ko is skipped unread
			b, err := data()
			got[name] = b
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(entries) {
		t.Errorf("members %v, want %d", names, len(entries))
	}
	if !bytes.Equal(got["lib/modules/6.1.0-x/kernel/b.ko"], entries[2].data) {
		t.Error("b.ko content differs")
	}
	// A truncated archive is an error, not a silent end.
	if err := readNewc(bytes.NewReader(buf.Bytes()[:buf.Len()/2]), func(string, uint32, func() ([]byte, error)) error { return nil }); err == nil {
		t.Error("truncated archive accepted")
	}
}

// TestInstallerPayloadCarriesTheVirtioNetModules builds the real installer payload (when the
// debian-installer initrd is installed) and checks every module is in it with /init.
func TestInstallerPayloadCarriesTheVirtioNetModules(t *testing.T) {
	if _, err := os.Stat(diInitrdPath); err != nil {
		t.Skipf("%s missing (apt-get install debian-installer-12-netboot-amd64): skipped", diInitrdPath)
	}
	if err := checkStatic(busyboxPath); err != nil {
		t.Skip(err)
	}
	img, err := installerPayload()
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]int{}
	err = readNewc(zr, func(name string, mode uint32, data func() ([]byte, error)) error {
		b, err := data()
		files[name] = len(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range append(append([]string{}, virtioNetModules...), usbDiskModules...) {
		if files["modules/"+path.Base(m)] == 0 {
			t.Errorf("payload lacks %s", m)
		}
	}
	if files["init"] == 0 || files["udhcpc.script"] == 0 || files["modules.order"] == 0 || files["modules-disk.order"] == 0 ||
		files["bootsector.bin"] != 512 {
		t.Errorf("payload lacks init, udhcpc.script, modules.order, modules-disk.order or the boot sector: %v", files)
	}
	if !strings.Contains(installerInit, fmt.Sprintf(" seek=%d ", bootSectorText)) {
		t.Errorf("installerInit writes the disk's text elsewhere than bootSectorText (%d)", bootSectorText)
	}
}
