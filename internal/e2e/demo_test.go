package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestDemo is scripts/demo.sh: the whole chain for a newcomer, on the machinery of the ISO
// scenarios. fleetboot runs in a private network namespace (full DHCP, TFTP, HTTP) with
// `fleetboot events --follow` printing its timeline live on the terminal; a demo ISO in Rocky
// Linux's layout (its kernel and initrd: the suite's installer stand-in) is uploaded through
// the API and assigned; a QEMU machine (SeaBIOS, the NIC's iPXE ROM) network-boots it — DHCP,
// iPXE, boot script, kernel and initrd out of the ISO, the kickstart, the done callback — and a
// second boot goes to the local disk. Bounded by the suite's per-VM timeout; the namespace, the
// server and the VM are removed when it ends. It runs only when asked (FLEETBOOT_DEMO=1):
// TestISOInstallsThroughFleetboot proves the same chain in CI.
func TestDemo(t *testing.T) {
	if os.Getenv("FLEETBOOT_DEMO") != "1" {
		t.Skip("the demo runs from scripts/demo.sh (FLEETBOOT_DEMO=1)")
	}
	requireBootSuite(t)
	say := func(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }
	started := time.Now()
	say("building the installer stand-in (a small kernel + initramfs) and the demo ISO")
	payload, kernel := installerAndKernel(t)
	env := &isoEnv{bootEnv: newBootEnv(t, "demo", payload)}
	env.server = startISOFleetboot(t, env.bootEnv, "--boot-chain", "ipxe")
	ctx := env.connect(t)
	say("fleetboot serves in network namespace %s on %s (log: %s)", env.lan.lan, env.api.base, env.serverLog)

	// The operator's view: every timeline event of every machine as it is recorded.
	argv := env.lan.lan.command(suite.bin, "events", "--follow", "--limit", "0", "--server", env.api.base, "--token", env.api.token)
	follow := exec.CommandContext(ctx, argv[0], argv[1:]...) // ip netns exec execs fleetboot: one process to stop
	follow.Stderr = os.Stderr
	out, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Printf("    [events] %s\n", sc.Text())
		}
	}()
	t.Cleanup(func() { follow.Process.Kill(); <-printed; follow.Wait() })

	vm := installVMs()[0] // rocky over legacy BIOS, rebooted after the install
	if vm.family == nil || !vm.reboot || vm.path != "bios" {
		t.Fatalf("the demo machine changed: %+v", vm)
	}
	iso, err := env.publishFamily(ctx, *vm.family, kernel, payload)
	if err != nil {
		t.Fatal(err)
	}
	say("uploaded the demo ISO %q (id %s): detected %s, profile with a kickstart", iso.Name, iso.ID, iso.Detected.Family)
	spec := newInstallVMSpec(t, env.lan, env.dir, vm, 0)
	if err := env.assign(ctx, vm, spec.mac, iso); err != nil {
		t.Fatal(err)
	}
	say("machine %s assigned; starting QEMU (serial console: %s) — under TCG this takes a minute or two", spec.mac, spec.serialLog)
	res := &installResult{vm: vm.name, path: vm.path, mac: spec.mac}
	env.runInstall(ctx, t, vm, spec, iso, vmTimeout(t), res)
	time.Sleep(2 * time.Second) // let the last events reach the terminal
	say("done in %s: boot script after %s, installed after %s, local disk on the next boot after %s",
		time.Since(started).Round(time.Second), res.script.Round(100*time.Millisecond), res.done.Round(100*time.Millisecond), res.local.Round(100*time.Millisecond))
}
