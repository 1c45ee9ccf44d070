package httpapi

import (
	"context"
	"io"

	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/iso9660"
	"github.com/fleetboot/fleetboot/internal/isostore"
)

// ISOCatalog is what the API needs of the ISO store: the catalog (list, get, delete), the
// files and whole images it serves, and uploads. *isostore.Store implements it over SQLite
// and an isostore.ImageStore; the files it opens are iso9660.Files whichever ImageStore
// holds the bytes, so this package never knows where they are (docs/design-storage.md).
type ISOCatalog interface {
	List(ctx context.Context) ([]*isostore.ISO, error)
	Get(ctx context.Context, idOrName string) (*isostore.ISO, error)
	Delete(ctx context.Context, idOrName string, force bool) error
	ReadDir(ctx context.Context, idOrName, dirPath string) ([]iso9660.Entry, error)
	OpenFile(ctx context.Context, idOrName, p string) (*iso9660.File, error)
	OpenImage(ctx context.Context, idOrName string) (*iso9660.File, *isostore.ISO, error)
	// ImageStatus says whether this instance can serve an ISO's bytes, without hashing them.
	ImageStatus(ctx context.Context, iso *isostore.ISO) (isostore.ImageState, error)

	Upload(ctx context.Context, name string, body io.Reader, wantSHA256 string) (*isostore.ISO, error)
	AddPath(ctx context.Context, name, p string) (*isostore.ISO, error)
	CreateUpload(ctx context.Context, name string, size int64, wantSHA256 string) (*isostore.Upload, error)
	UploadStatus(ctx context.Context, id string) (*isostore.Upload, error)
	AppendUpload(ctx context.Context, id string, offset int64, chunk io.Reader) (int64, error)
	FinishUpload(ctx context.Context, id string) (*isostore.ISO, error)
	AbortUpload(ctx context.Context, id string) error
}

// Inventory is what the API needs of the machine inventory: machines and their timeline,
// profiles and rules. *inventory.Inventory implements it over SQLite; another database
// implements the same methods with the same errors (inventory.ErrNotFound, ErrConflict, …),
// which errors.go maps to statuses.
type Inventory interface {
	Machines(ctx context.Context, state inventory.State) ([]*inventory.Machine, error)
	Machine(ctx context.Context, mac string) (*inventory.Machine, error)
	CreateMachine(ctx context.Context, mac string, u inventory.MachineUpdate) (*inventory.Machine, error)
	UpdateMachine(ctx context.Context, mac string, u inventory.MachineUpdate) (*inventory.Machine, error)
	DeleteMachine(ctx context.Context, mac string) error
	Transition(ctx context.Context, mac string, from []inventory.State, to inventory.State, why string) (*inventory.Machine, error)
	CountByState(ctx context.Context) (map[inventory.State]int, error)

	AddEvent(ctx context.Context, mac, kind, detail string) error
	Events(ctx context.Context, mac string, limit int) ([]inventory.Event, error)
	// The live timeline (GET /api/v1/events/stream): events after an id, and a channel closed
	// when events are committed. A store shared by several fleetboots must wake on the others'
	// commits too (PostgreSQL: LISTEN/NOTIFY); the stream re-reads at every heartbeat anyway.
	RecentEvents(ctx context.Context, limit int) ([]inventory.Event, error)
	EventsAfter(ctx context.Context, after int64, mac string, limit int) ([]inventory.Event, error)
	LastEventID(ctx context.Context) (int64, error)
	EventsWritten() <-chan struct{}

	Profiles(ctx context.Context) ([]*inventory.Profile, error)
	Profile(ctx context.Context, name string) (*inventory.Profile, error)
	PutProfile(ctx context.Context, p *inventory.Profile) (*inventory.Profile, bool, error)
	DeleteProfile(ctx context.Context, name string) error

	Rules(ctx context.Context) ([]*inventory.Rule, error)
	AddRule(ctx context.Context, r inventory.Rule) (*inventory.Rule, int, error)
	DeleteRule(ctx context.Context, id int64) error
}

var (
	_ ISOCatalog = (*isostore.Store)(nil)
	_ Inventory  = (*inventory.Inventory)(nil)
)
