// Package embedded holds the files compiled into the fleetboot binary: the iPXE binaries that
// scripts/fetch-ipxe.sh places in embed/ipxe and the signed shim + GRUB chain that
// scripts/fetch-secureboot.sh places in embed/secureboot at build time. A clean clone compiles
// without them (only the README.md files are there); the server then refuses to start without
// iPXE and says how to get it, and runs without the signed chain, saying so.
package embedded

import "embed"

// IPXE is the embed/ipxe directory. Files live under the "ipxe/" prefix.
//
//go:embed ipxe
var IPXE embed.FS

// SecureBoot is the embed/secureboot directory. Files live under the "secureboot/" prefix.
//
//go:embed secureboot
var SecureBoot embed.FS
