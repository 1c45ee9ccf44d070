package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fleetboot/fleetboot/internal/isostore"
	"github.com/fleetboot/fleetboot/internal/provision"
	"github.com/fleetboot/fleetboot/internal/urls"
)

// Detector runs distribution detection on a newly published ISO (internal/provision).
type Detector interface {
	Detect(ctx context.Context, idOrName string) (*provision.Detection, error)
}

// ISOInfo is an ISO as the API shows it (internal/client decodes into it too).
type ISOInfo struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Label      string          `json:"label"`
	Size       int64           `json:"size"`
	SHA256     string          `json:"sha256"`
	Files      int             `json:"files"`
	Names      string          `json:"names"`
	UploadedAt time.Time       `json:"uploaded_at"`
	Path       string          `json:"path,omitempty"`
	Detected   json.RawMessage `json:"detected,omitempty"`
	// URL is where the ISO's files are served (…/isos/{id}).
	URL string `json:"url"`
	// Existed is set when an upload's content was already stored.
	Existed bool `json:"existed,omitempty"`
	// Message says, for an upload whose content was already stored, what happened to the
	// name it was sent under: nothing to do (its own name), or not added (an ISO has one name).
	Message string `json:"message,omitempty"`
	// Image says whether the instance that answered can serve the ISO's bytes: verified
	// (checked against SHA256), unverified (present, checked at its first use), missing (not
	// on this instance), corrupt (does not match SHA256) or changed (a registered file
	// modified since it was indexed). Set by the list and get calls.
	Image string `json:"image,omitempty"`
	// ImageError says why the bytes cannot be served (missing, corrupt, changed): where they
	// were looked for and what to do.
	ImageError string `json:"image_error,omitempty"`
}

// withImageStatus adds this instance's view of the ISO's bytes to v.
func (a *API) withImageStatus(ctx context.Context, v *ISOInfo, iso *isostore.ISO) {
	state, err := a.cfg.ISOs.ImageStatus(ctx, iso)
	v.Image = string(state)
	if err != nil {
		v.ImageError = err.Error()
	}
}

func (a *API) isoView(iso *isostore.ISO) ISOInfo {
	v := ISOInfo{ID: iso.ID, Name: iso.Name, Label: iso.Label, Size: iso.Size, SHA256: iso.SHA256, Files: iso.FileCount,
		Names: string(iso.Names), UploadedAt: iso.UploadedAt, Path: iso.SourcePath, Existed: iso.Existed,
		URL: urls.Base(a.cfg.Scripts.HTTPBase).ISO(iso.ID)}
	if iso.Detected != "" && json.Valid([]byte(iso.Detected)) {
		v.Detected = json.RawMessage(iso.Detected)
	}
	return v
}

func (a *API) routesISOs(e *echo.Echo, api *echo.Group) {
	api.GET("/isos", a.listISOs)
	api.GET("/isos/:id", a.getISO)
	api.PUT("/isos/:name", a.uploadISO)
	api.POST("/isos", a.uploadISO)
	api.POST("/isos/register", a.registerISO)
	api.DELETE("/isos/:id", a.deleteISO)

	api.POST("/uploads", a.createUpload)
	api.Match([]string{http.MethodHead, http.MethodGet}, "/uploads/:id", a.uploadStatus)
	api.PATCH("/uploads/:id", a.appendUpload)
	api.POST("/uploads/:id/finish", a.finishUpload)
	api.DELETE("/uploads/:id", a.abortUpload)

	getHead := []string{http.MethodGet, http.MethodHead}
	// The ISO's URL (ISOInfo.URL, what `iso show` prints) is the base of every boot URL into
	// it; opened in a browser it shows the ISO's files.
	iso := urls.ISOsDir + ":id"
	e.Match(getHead, iso, a.isoHome)
	e.Match(getHead, iso+"/", a.isoHome)
	e.Match(getHead, iso+urls.ISOImage, a.isoImage)
	e.Match(getHead, iso+strings.TrimSuffix(urls.ISOFilesDir, "/"), a.isoFile)
	e.Match(getHead, iso+urls.ISOFilesDir+"*", a.isoFile)
}

// isoHome redirects an ISO's base URL to the listing of its files.
func (a *API) isoHome(c echo.Context) error {
	iso, err := a.cfg.ISOs.Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusFound, urls.ISOFiles(urls.ISOsDir+url.PathEscape(iso.ID)))
}

func (a *API) listISOs(c echo.Context) error {
	isos, err := a.cfg.ISOs.List(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]ISOInfo, 0, len(isos))
	for _, iso := range isos {
		v := a.isoView(iso)
		a.withImageStatus(c.Request().Context(), &v, iso)
		out = append(out, v)
	}
	return c.JSON(http.StatusOK, out)
}

func (a *API) getISO(c echo.Context) error {
	iso, err := a.cfg.ISOs.Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	v := a.isoView(iso)
	a.withImageStatus(c.Request().Context(), &v, iso)
	return c.JSON(http.StatusOK, v)
}

// wantSHA256 reads the expected checksum from X-Checksum-Sha256 (hex) or Digest (RFC 3230,
// sha-256=<base64>).
func wantSHA256(r *http.Request) (string, error) {
	if h := strings.TrimSpace(r.Header.Get("X-Checksum-Sha256")); h != "" {
		return strings.ToLower(h), nil
	}
	for _, d := range strings.Split(r.Header.Get("Digest"), ",") {
		alg, val, ok := strings.Cut(strings.TrimSpace(d), "=")
		if ok && strings.EqualFold(alg, "sha-256") {
			raw, err := base64.StdEncoding.DecodeString(val)
			if err != nil || len(raw) != sha256.Size {
				return "", httpError(http.StatusBadRequest, "Digest: sha-256 must be base64 of 32 bytes")
			}
			return hex.EncodeToString(raw), nil
		}
	}
	return "", nil
}

// uploadISO streams a one-shot upload: PUT /api/v1/isos/{name} or POST /api/v1/isos with a raw
// body (?name= or X-Filename) or multipart/form-data (a "file" part; its filename or a preceding
// "name" part names the ISO). The body is never buffered (no FormFile).
func (a *API) uploadISO(c echo.Context) error {
	release, err := a.uploadSlot(c)
	if err != nil {
		return err
	}
	defer release()
	r := c.Request()
	want, err := wantSHA256(r)
	if err != nil {
		return err
	}
	name := c.Param("name")
	if name == "" {
		name = c.QueryParam("name")
	}
	if name == "" {
		name = r.Header.Get("X-Filename")
	}
	body := io.Reader(r.Body)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		mr, err := r.MultipartReader()
		if err != nil {
			return httpError(http.StatusBadRequest, "multipart: "+err.Error())
		}
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				return httpError(http.StatusBadRequest, `multipart body has no "file" part`)
			}
			if err != nil {
				return httpError(http.StatusBadRequest, "multipart: "+err.Error())
			}
			if part.FormName() == "name" {
				b, _ := io.ReadAll(io.LimitReader(part, 256))
				name = strings.TrimSpace(string(b))
				continue
			}
			if part.FormName() == "sha256" {
				b, _ := io.ReadAll(io.LimitReader(part, 128))
				want = strings.ToLower(strings.TrimSpace(string(b)))
				continue
			}
			if part.FormName() == "file" {
				if name == "" {
					name = path.Base(part.FileName())
				}
				body = part
				break
			}
		}
	}
	if name == "" {
		return httpError(http.StatusBadRequest, "name the ISO: PUT /api/v1/isos/{name}, ?name=, X-Filename, or a multipart file name")
	}
	iso, err := a.cfg.ISOs.Upload(r.Context(), name, body, want)
	if err != nil {
		return err
	}
	return a.published(c, iso, name)
}

// published runs detection on a new ISO and answers 201, or 200 when the content existed,
// saying what became of the name it was sent under (requested).
func (a *API) published(c echo.Context, iso *isostore.ISO, requested string) error {
	ctx := c.Request().Context()
	if !iso.Existed && a.cfg.Detector != nil {
		if _, err := a.cfg.Detector.Detect(ctx, iso.ID); err != nil {
			a.log.Warn("distribution detection failed", "iso", iso.ID, "err", err)
		}
		if fresh, err := a.cfg.ISOs.Get(ctx, iso.ID); err == nil {
			iso = fresh
		}
	}
	a.log.Info("iso published", "iso", iso.ID, "name", iso.Name, "bytes", iso.Size, "sha256", iso.SHA256, "files", iso.FileCount, "existed", iso.Existed)
	code := http.StatusCreated
	if iso.Existed {
		code = http.StatusOK
	}
	c.Response().Header().Set("Location", "/api/v1/isos/"+iso.ID)
	v := a.isoView(iso)
	switch {
	case !iso.Existed:
	case iso.Name == requested:
		v.Message = fmt.Sprintf("already stored as %q: nothing new was kept", iso.Name)
	default:
		v.Message = fmt.Sprintf("the same content is already stored as %q (id %s): the name %q was not added (an ISO has one name); use %q",
			iso.Name, iso.ID, requested, iso.Name)
	}
	return c.JSON(code, v)
}

func (a *API) registerISO(c echo.Context) error {
	var b struct {
		Name string `json:"name"`
		Path string `json:"path"`
	}
	if err := bindJSON(c, &b); err != nil {
		return err
	}
	if b.Name == "" {
		b.Name = path.Base(b.Path)
	}
	iso, err := a.cfg.ISOs.AddPath(c.Request().Context(), b.Name, b.Path)
	if err != nil {
		return err
	}
	return a.published(c, iso, b.Name)
}

func (a *API) deleteISO(c echo.Context) error {
	force := c.QueryParam("force") == "1" || c.QueryParam("force") == "true"
	if err := a.cfg.ISOs.Delete(c.Request().Context(), c.Param("id"), force); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// UploadInfo is a resumable upload as the API shows it.
type UploadInfo struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Size      int64     `json:"size"`
	Offset    int64     `json:"offset"`
	SHA256    string    `json:"sha256,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func uploadView(u *isostore.Upload) UploadInfo {
	return UploadInfo{ID: u.ID, Name: u.Name, Size: u.Size, Offset: u.Offset, SHA256: u.WantSHA256, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

// createUpload starts a resumable upload: POST /api/v1/uploads {"name","size","sha256"}.
func (a *API) createUpload(c echo.Context) error {
	b := struct {
		Name   string `json:"name"`
		Size   *int64 `json:"size"`
		SHA256 string `json:"sha256"`
	}{}
	if err := bindJSON(c, &b); err != nil {
		return err
	}
	size := int64(-1)
	if b.Size != nil {
		size = *b.Size
	}
	u, err := a.cfg.ISOs.CreateUpload(c.Request().Context(), b.Name, size, strings.ToLower(b.SHA256))
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/api/v1/uploads/"+u.ID)
	c.Response().Header().Set("Upload-Offset", "0")
	return c.JSON(http.StatusCreated, uploadView(u))
}

func (a *API) uploadStatus(c echo.Context) error {
	u, err := a.cfg.ISOs.UploadStatus(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Upload-Offset", strconv.FormatInt(u.Offset, 10))
	if u.Size >= 0 {
		h.Set("Upload-Length", strconv.FormatInt(u.Size, 10))
	}
	h.Set("Cache-Control", "no-store")
	if c.Request().Method == http.MethodHead {
		return c.NoContent(http.StatusOK)
	}
	return c.JSON(http.StatusOK, uploadView(u))
}

// appendUpload writes one chunk: PATCH /api/v1/uploads/{id} with Upload-Offset equal to the
// server's offset. A chunk cut off half-way keeps what arrived; the answer (or a HEAD) tells
// where to go on.
func (a *API) appendUpload(c echo.Context) error {
	release, err := a.uploadSlot(c)
	if err != nil {
		return err
	}
	defer release()
	off, err := strconv.ParseInt(c.Request().Header.Get("Upload-Offset"), 10, 64)
	if err != nil || off < 0 {
		return httpError(http.StatusBadRequest, "Upload-Offset header must be the byte offset this chunk starts at")
	}
	// Not the request's context: net/http cancels it as soon as it sees the client go, while
	// bytes that client sent may still wait in the body's buffer. Those are kept (the body
	// read fails by itself once they are used up), so a resumed upload loses nothing.
	ctx := context.WithoutCancel(c.Request().Context())
	n, err := a.cfg.ISOs.AppendUpload(ctx, c.Param("id"), off, c.Request().Body)
	if n > 0 {
		c.Response().Header().Set("Upload-Offset", strconv.FormatInt(n, 10))
	}
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (a *API) finishUpload(c echo.Context) error {
	u, err := a.cfg.ISOs.UploadStatus(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	iso, err := a.cfg.ISOs.FinishUpload(c.Request().Context(), u.ID)
	if err != nil {
		return err
	}
	return a.published(c, iso, u.Name)
}

func (a *API) abortUpload(c echo.Context) error {
	if err := a.cfg.ISOs.AbortUpload(c.Request().Context(), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// isoImage serves the whole image (Ubuntu's casper downloads it; Proxmox loads it as an
// initrd) with Range and sendfile.
func (a *API) isoImage(c echo.Context) error {
	f, iso, err := a.cfg.ISOs.OpenImage(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	defer f.Close()
	c.Response().Header().Set("Content-Type", "application/x-iso9660-image")
	return serveContent(c, iso.Name, iso.UploadedAt, `"`+iso.SHA256+`"`, f)
}

// isoFile serves a file inside an ISO, or a directory listing (JSON when asked for with
// Accept: application/json or ?format=json, HTML otherwise, for humans and installers that
// crawl). Paths are looked up in the ISO's index only.
func (a *API) isoFile(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	rest, err := wildcardPath(c)
	if err != nil {
		return err
	}
	p := "/" + rest
	f, err := a.cfg.ISOs.OpenFile(ctx, id, p)
	if errors.Is(err, isostore.ErrIsDir) {
		return a.isoDir(c, id, p)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	ct := mime.TypeByExtension(path.Ext(f.Name()))
	if ct == "" {
		ct = "application/octet-stream"
	}
	c.Response().Header().Set("Content-Type", ct)
	return serveContent(c, f.Name(), f.ModTime(), f.ETag(), f)
}

// DirEntryInfo is one entry of a JSON directory listing inside an ISO.
type DirEntryInfo struct {
	Name    string    `json:"name"`
	Type    string    `json:"type"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	Target  string    `json:"target,omitempty"`
}

func (a *API) isoDir(c echo.Context, id, p string) error {
	// Relative links in the HTML listing need the trailing slash.
	if !strings.HasSuffix(c.Request().URL.Path, "/") {
		u := *c.Request().URL
		u.Path += "/"
		return c.Redirect(http.StatusMovedPermanently, u.String())
	}
	entries, err := a.cfg.ISOs.ReadDir(c.Request().Context(), id, p)
	if err != nil {
		return err
	}
	out := make([]DirEntryInfo, 0, len(entries))
	for _, e := range entries {
		t := "file"
		switch {
		case e.IsDir():
			t = "dir"
		case e.IsSymlink():
			t = "symlink"
		}
		out = append(out, DirEntryInfo{Name: e.Name(), Type: t, Size: e.Size, ModTime: e.ModTime, Target: e.Target})
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	if c.QueryParam("format") == "json" || strings.Contains(c.Request().Header.Get("Accept"), "application/json") {
		return c.JSON(http.StatusOK, out)
	}
	c.Response().Header().Set("Content-Type", "text/html; charset=utf-8")
	c.Response().WriteHeader(http.StatusOK)
	if c.Request().Method == http.MethodHead {
		return nil
	}
	return dirTmpl.Execute(c.Response(), map[string]any{"Path": p, "Entries": out})
}

var dirTmpl = template.Must(template.New("dir").Funcs(template.FuncMap{
	"href": func(e DirEntryInfo) string {
		h := url.PathEscape(e.Name)
		if e.Type == "dir" {
			h += "/"
		}
		return h
	},
}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Index of {{.Path}}</title></head>
<body><h1>Index of {{.Path}}</h1>
<pre><a href="../">../</a>
{{range .Entries}}<a href="{{href .}}">{{.Name}}{{if eq .Type "dir"}}/{{end}}</a>	{{.Size}}
{{end}}</pre></body></html>
`))
