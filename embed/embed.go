// Package embedded holds the files compiled into the fleetboot binary: the iPXE binaries that
// scripts/fetch-ipxe.sh places in embed/ipxe at build time. A clean clone compiles without them
// (only README.md is there); the server then refuses to start and says how to get them.
package embedded

import "embed"

// IPXE is the embed/ipxe directory. Files live under the "ipxe/" prefix.
//
//go:embed ipxe
var IPXE embed.FS
