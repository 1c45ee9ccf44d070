// Package e2e is fleetboot's end-to-end suite, the proof that machines boot: it builds the real
// fleetboot binary, runs it inside a private network namespace (a bridge with a veth for carrier
// and one tap per VM), next to a stand-in site DHCP server in proxy mode, and network-boots QEMU
// machines through it — SeaBIOS with the NIC's iPXE ROM, a legacy BIOS PXE client that is not
// iPXE (TFTP undionly.kpxe), OVMF's own PXE (TFTP snponly.efi) and OVMF HTTP Boot — until each
// one's kernel runs a tiny initramfs that prints the per-run token from its command line.
//
// The ISO scenarios (install_test.go) run next to them on a LAN of their own: ISOs in five
// distributions' layouts, whose kernel and initrd are an installer stand-in, are uploaded
// through the API and installed once on machines assigned to them; the stand-in checks the
// recipe's command line, fetches what it points at, calls the install-done callback, and the
// machine's next boot is local. An unknown machine gets the menu and its local-disk default.
//
// The mixed-fleet scenario (arm64_test.go) proves arm64 next to x86_64 on one server and one
// set of profiles: the real Debian 12 installers for arm64 and amd64, uploaded as mini.iso-layout
// ISOs, boot on QEMU arm64 machines (AAVMF, over UEFI PXE and UEFI HTTP Boot) and an x86_64
// machine (OVMF, UEFI PXE) until each asks "Select a language" on its serial console.
//
// The multi-site scenario (sites_test.go) runs two fleetboot instances on one PostgreSQL
// database, each on a bridge and subnet of its own: a machine installs through the first and
// then gets local boot from the second, whose API shows the timeline with both sites. It needs
// FLEETBOOT_TEST_POSTGRES (scripts/with-postgres.sh; scripts/test.sh runs the suite inside it).
//
// Everything lives in _test.go files; this file only carries the package documentation. The
// suite needs root, QEMU and friends (scripts/deps.sh installs them): without them it skips,
// unless CI=true or FLEETBOOT_E2E=1, where it fails and names what to install.
package e2e
