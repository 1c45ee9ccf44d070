package store

import (
	"strings"
	"unicode/utf8"
)

// StorableText is s as text both backends store alike: invalid UTF-8 sequences and NUL
// become U+FFFD. A timeline line may carry bytes another host sent (the boot file name of a
// foreign DHCP reply, a query parameter of a firmware's request), and PostgreSQL refuses text
// that is not UTF-8 or holds NUL, while SQLite stores any bytes: without it one such line
// failed on PostgreSQL only, and where a batch of lines is one statement (the inventory's
// event writes) every line of its batch with it.
func StorableText(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
