package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// The serial console proves what the machine did; fleetboot's log (--log-format json) proves
// what fleetboot decided. This file pins the few record shapes the suite relies on:
//
//	DHCP replies  {"mac": MAC, "firmware": class, "file": boot file, ...}  (offer, ack, proxy-offer)
//	TFTP          {"msg": "tftp sent", "client": "IP:port", "file": name, ...}
//	HTTP access   {"msg": "http", "path": "/ipxe/snponly.efi", "status": 200, "ip": IP, ...}
//	boot script   {"msg": "boot script", "mac": MAC, "kind": "target", "ip": IP, ...}
//
// A rename in fleetboot's logging shows up here as a failed expectation naming the record.

// serverExpectation is what fleetboot's log must show for one machine, in this order: its first
// DHCP reply to the machine classifies the firmware and names the boot file; the network boot
// program (if any) is transferred to the machine's address; iPXE then DHCPs and is classified as
// iPXE; and the machine finally fetches its boot script and gets the boot target.
type serverExpectation struct {
	firmware string // fleetboot's classification in the first reply, e.g. "bios-pxe"
	file     string // suffix of the boot file in that reply
	nbp      string // iPXE binary the firmware loads first ("" when the firmware is iPXE)
	nbpVia   string // "tftp" or "http"
}

// logRecord is one JSON line of fleetboot's log.
type logRecord map[string]any

func (r logRecord) str(k string) string {
	s, _ := r[k].(string)
	return s
}

func (r logRecord) num(k string) float64 {
	f, _ := r[k].(float64)
	return f
}

// parseLog reads JSON lines; lines that are not JSON objects (a panic trace, a partial last
// line) are skipped.
func parseLog(data []byte) []logRecord {
	var recs []logRecord
	for _, line := range bytes.Split(data, []byte("\n")) {
		var r logRecord
		if json.Unmarshal(line, &r) == nil {
			recs = append(recs, r)
		}
	}
	return recs
}

// checkServerLog verifies want against the server log for the machine with this MAC.
func checkServerLog(log []byte, mac string, want serverExpectation) error {
	recs := parseLog(log)
	// The machine's address: from the boot-script request, the one record that has both MAC
	// and IP in every DHCP mode (a proxyDHCP reply carries no address).
	ip := ""
	for _, r := range recs {
		if r.str("msg") == "boot script" && strings.EqualFold(r.str("mac"), mac) && r.str("kind") == "target" {
			ip = r.str("ip")
		}
	}
	isReply := func(r logRecord) bool { return strings.EqualFold(r.str("mac"), mac) && r.str("file") != "" }
	type step struct {
		what  string
		match func(logRecord) bool
	}
	var steps []step
	steps = append(steps, step{
		fmt.Sprintf("first DHCP reply to %s: firmware %q, file …%s", mac, want.firmware, want.file),
		isReply, // the first reply, whatever it says; checked below
	})
	if want.nbp != "" {
		switch want.nbpVia {
		case "tftp":
			steps = append(steps, step{fmt.Sprintf("TFTP transfer of %s to %s", want.nbp, ip), func(r logRecord) bool {
				return ip != "" && r.str("msg") == "tftp sent" && r.str("file") == want.nbp && strings.HasPrefix(r.str("client"), ip+":")
			}})
		case "http":
			steps = append(steps, step{fmt.Sprintf("HTTP GET of /ipxe/%s by %s", want.nbp, ip), func(r logRecord) bool {
				return ip != "" && r.str("msg") == "http" && r.str("method") == "GET" && r.str("path") == "/ipxe/"+want.nbp &&
					r.num("status") == 200 && r.str("ip") == ip
			}})
		}
		steps = append(steps, step{"a DHCP reply classifying the chained iPXE as iPXE", func(r logRecord) bool {
			return isReply(r) && r.str("firmware") == "ipxe"
		}})
	}
	steps = append(steps, step{"boot script with the boot target", func(r logRecord) bool {
		return r.str("msg") == "boot script" && strings.EqualFold(r.str("mac"), mac) && r.str("kind") == "target"
	}})

	i := 0
	for si, s := range steps {
		for ; i < len(recs) && !s.match(recs[i]); i++ {
		}
		if i == len(recs) {
			return fmt.Errorf("server log lacks %s", s.what)
		}
		if si == 0 {
			r := recs[i]
			if r.str("firmware") != want.firmware || !strings.HasSuffix(r.str("file"), want.file) {
				return fmt.Errorf("fleetboot's first DHCP reply to %s says firmware %q, file %q; want %q, …%s",
					mac, r.str("firmware"), r.str("file"), want.firmware, want.file)
			}
		}
		i++
	}
	return nil
}

func TestCheckServerLogFollowsTheBootChain(t *testing.T) {
	const mac = "52:54:00:fb:01:01"
	lines := []string{
		`{"msg":"dhcp offer","mac":"52:54:00:fb:01:00","firmware":"ipxe","file":"http://s/boot.ipxe"}`,
		`{"msg":"dhcp offer","mac":"52:54:00:fb:01:01","firmware":"bios-pxe","file":"undionly.kpxe","ip":"10.77.0.100"}`,
		`{"msg":"dhcp ignored","mac":"52:54:00:fb:01:01","firmware":"bios-pxe"}`,
		`{"msg":"tftp sent","client":"10.77.0.100:58719","file":"undionly.kpxe"}`,
		`{"msg":"dhcp offer","mac":"52:54:00:fb:01:01","firmware":"ipxe","file":"http://s/boot.ipxe"}`,
		`{"msg":"boot script","mac":"52:54:00:fb:01:01","kind":"target","ip":"10.77.0.100"}`,
		`{"msg":"partial`,
	}
	log := []byte(strings.Join(lines, "\n"))
	tftp := serverExpectation{firmware: "bios-pxe", file: "undionly.kpxe", nbp: "undionly.kpxe", nbpVia: "tftp"}
	if err := checkServerLog(log, mac, tftp); err != nil {
		t.Errorf("complete chain rejected: %v", err)
	}
	cases := []struct {
		name string
		log  []string
		want serverExpectation
	}{
		{"classified as iPXE from the start", lines, serverExpectation{firmware: "ipxe", file: "/boot.ipxe"}},
		{"NBP sent to another machine", []string{lines[1], `{"msg":"tftp sent","client":"10.77.0.101:1","file":"undionly.kpxe"}`, lines[4], lines[5]}, tftp},
		{"no boot script", lines[:5], tftp},
		{"iPXE never came back", []string{lines[1], lines[3], lines[5]}, tftp},
		{"NBP after the boot script", []string{lines[1], lines[4], lines[5], lines[3]}, tftp},
	}
	for _, c := range cases {
		if err := checkServerLog([]byte(strings.Join(c.log, "\n")), mac, c.want); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}
