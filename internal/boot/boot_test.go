package boot

import (
	"testing"
)

func TestAssetURLEscapesSegments(t *testing.T) {
	if got := AssetURL("http://s", "a b/c#d?.img"); got != "http://s/assets/a%20b/c%23d%3F.img" {
		t.Fatalf("got %s", got)
	}
}
