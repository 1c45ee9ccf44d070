package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fleetboot/fleetboot/internal/auth"
	"github.com/fleetboot/fleetboot/internal/client"
	"github.com/fleetboot/fleetboot/internal/webui"
)

// apiFlags are the flags every command talking to a running server shares.
type apiFlags struct {
	server string
	token  string
	data   string
	caCert string
}

// register adds --server, --token and --data to cmd and all its subcommands.
func (f *apiFlags) register(cmd *cobra.Command) {
	fs := cmd.PersistentFlags()
	fs.StringVar(&f.server, "server", "", "fleetboot server URL (default $FLEETBOOT_SERVER, else http://127.0.0.1:8080)")
	fs.StringVar(&f.token, "token", "", "API token (default $FLEETBOOT_TOKEN, else the api-token file in --data)")
	fs.StringVar(&f.data, "data", "", "the server's data directory, to read its api-token from (default $FLEETBOOT_DATA, else ./data)")
	fs.StringVar(&f.caCert, "ca-cert", "", "PEM certificate(s) to trust for an https:// --server, e.g. the server's own self-signed --tls-cert (default $FLEETBOOT_CA_CERT, else the system's)")
}

// httpClient trusts the --ca-cert certificates (and only them) when one is given.
func (f *apiFlags) httpClient() (*http.Client, error) {
	ca := firstNonEmpty(f.caCert, os.Getenv("FLEETBOOT_CA_CERT"))
	if ca == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("--ca-cert: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca-cert %s: no PEM certificate in it", ca)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}

// client builds an API client from the flags, the environment and the token file, in that
// order. A missing ./data/api-token is not an error here: the server answers 401 and explain
// says where the token is.
func (f *apiFlags) client() (*client.Client, error) {
	server := firstNonEmpty(f.server, os.Getenv("FLEETBOOT_SERVER"), "http://127.0.0.1:8080")
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	token := firstNonEmpty(f.token, os.Getenv("FLEETBOOT_TOKEN"))
	if token == "" {
		data := firstNonEmpty(f.data, os.Getenv("FLEETBOOT_DATA"), "./data")
		b, err := os.ReadFile(filepath.Join(data, auth.TokenFile))
		switch {
		case err == nil:
			token = strings.TrimSpace(string(b))
		case f.data != "" || !errors.Is(err, os.ErrNotExist):
			// The user pointed at a data dir explicitly: not finding the token there is worth saying.
			return nil, fmt.Errorf("read API token: %w (pass --token or set FLEETBOOT_TOKEN)", err)
		}
	}
	hc, err := f.httpClient()
	if err != nil {
		return nil, err
	}
	return &client.Client{Base: strings.TrimRight(server, "/"), Token: token, HTTP: hc}, nil
}

// explain turns client errors into messages that say what to do.
func (f *apiFlags) explain(c *client.Client, err error) error {
	if err == nil {
		return nil
	}
	var ue *client.UnreachableError
	if errors.As(err, &ue) {
		return fmt.Errorf("cannot reach fleetboot at %s: is `fleetboot serve` running, and is --server (or FLEETBOOT_SERVER) right? (%w)", ue.Base, ue.Err)
	}
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
		const how = "pass --token, set FLEETBOOT_TOKEN, or point --data at the server's data directory (it holds api-token)"
		if c.Token == "" {
			return fmt.Errorf("the server wants the API token and none was found (no --token, no FLEETBOOT_TOKEN, no ./data/api-token): %s", how)
		}
		return fmt.Errorf("the server refused the API token (%s): %s", ae.Message, how)
	}
	return err
}

// run wraps a command body that needs a client, with errors explained.
func (f *apiFlags) run(body func(cmd *cobra.Command, c *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := f.client()
		if err != nil {
			return err
		}
		return f.explain(c, body(cmd, c, args))
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func newISOCmd() *cobra.Command {
	var f apiFlags
	cmd := groupCommand(&cobra.Command{
		Use:   "iso",
		Short: "Upload, list, show and delete the ISO images a server boots from",
		Example: `  fleetboot iso upload Fedora-Server-dvd-x86_64-41-1.4.iso --name fedora-41
  fleetboot iso ls
  fleetboot iso add /srv/isos/ubuntu-24.04-live-server-amd64.iso   # a file on the server's disk
  fleetboot iso rm fedora-41`,
	})
	f.register(cmd)

	var name string
	var quiet bool
	var chunk int64
	upload := &cobra.Command{
		Use:   "upload FILE",
		Short: "Upload an ISO (resumable: run it again after an interruption and it continues)",
		Long: `Upload an ISO image. The file must be an ISO 9660 image (checked before anything is sent).

The upload is resumable: after Ctrl-C, a lost connection or a reboot, run the same command
again and it continues where the server stopped (the upload id is remembered in the user's
cache directory; the server keeps unfinished uploads for --upload-expiry, 24h).

A server already running its --max-uploads answers "busy" with the time to come back: the
upload waits its turn (saying so) for up to an hour in all instead of failing.

If the server already has this content under the same name, nothing is sent. Under another
name, the server keeps its one name for it and says so: ISO names are not aliases.`,
		Args: cobra.ExactArgs(1),
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if dir, err := os.UserCacheDir(); err == nil {
				c.StateDir = filepath.Join(dir, "fleetboot", "uploads")
			}
			c.ChunkSize = chunk
			label := firstNonEmpty(name, filepath.Base(args[0]))
			bar := newUploadProgress(cmd.ErrOrStderr(), label, !quiet)
			c.Notice = bar.notice
			iso, err := c.UploadISO(cmd.Context(), args[0], name, bar.update)
			if err != nil {
				bar.abort()
				var ie *client.InterruptedError
				if errors.As(err, &ie) {
					return interruptedError{fmt.Sprintf("interrupted at %d %%, run the same command to resume", ie.Percent()), ie.Err}
				}
				return err
			}
			bar.finish()
			out := cmd.OutOrStdout()
			switch {
			case !iso.Existed:
				fmt.Fprintf(out, "uploaded %s: id %s, %d files, sha256 %s\n", iso.Name, iso.ID, iso.Files, iso.SHA256)
			case iso.Name == label:
				fmt.Fprintf(out, "already there: %s (id %s, sha256 %s) has the same content; nothing was uploaded\n", iso.Name, iso.ID, iso.SHA256)
			default:
				fmt.Fprintf(out, "already stored as %s (id %s, sha256 %s): the name %q was NOT added (an ISO has one name); use %s\n",
					iso.Name, iso.ID, iso.SHA256, label, iso.Name)
			}
			if fam := detectedSummary(iso.Detected); fam != "" {
				fmt.Fprintf(out, "detected %s\n", fam)
			}
			return nil
		}),
	}
	upload.Flags().StringVar(&name, "name", "", "name of the ISO on the server (default: the file name)")
	upload.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	upload.Flags().Int64Var(&chunk, "chunk-size", 64<<20, "bytes per upload request: what an interruption can cost at most")

	var lsOut outputFlag
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the stored ISOs",
		Args:    cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error { return lsOut.check() },
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			isos, err := c.ListISOs(cmd.Context())
			if err != nil {
				return err
			}
			var problems []string
			err = lsOut.print(cmd.OutOrStdout(), isos, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "ID\tNAME\tLABEL\tSIZE\tDETECTED\tSHA256\tIMAGE")
				for _, iso := range isos {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", iso.ID, iso.Name, orDash(iso.Label), webui.HumanBytes(iso.Size),
						orDash(detectedSummary(iso.Detected)), shortSum(iso.SHA256), orDash(iso.Image))
					if iso.ImageError != "" {
						problems = append(problems, iso.ImageError)
					}
				}
			})
			if err == nil && lsOut.format != "json" {
				// The server that answered cannot serve these: say why, in full, under the table.
				for _, p := range problems {
					fmt.Fprintln(cmd.OutOrStdout(), "\n"+p)
				}
			}
			return err
		}),
	}
	lsOut.register(ls)

	show := &cobra.Command{
		Use:   "show ID|NAME",
		Short: "Show an ISO as JSON: what was detected, its boot entries and their Secure Boot readiness",
		Args:  cobra.ExactArgs(1),
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, args []string) error {
			iso, err := c.GetISO(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), iso)
		}),
	}

	var addName string
	add := &cobra.Command{
		Use:   "add PATH",
		Short: "Register an ISO that is already on the server's disk (absolute path there; no copy)",
		Long: "Register an ISO that is already on the server's disk: an absolute path there, served in place (no copy).\n" +
			"The server accepts only files below a directory it was started with --register-dir DIR (repeatable),\n" +
			"after resolving symlinks; without --register-dir, registering by path is refused (403).",
		Args: cobra.ExactArgs(1),
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, args []string) error {
			iso, err := c.RegisterISO(cmd.Context(), addName, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added %s: id %s, %d files, sha256 %s\n", iso.Name, iso.ID, iso.Files, iso.SHA256)
			return nil
		}),
	}
	add.Flags().StringVar(&addName, "name", "", "name of the ISO (default: the file name)")

	var force bool
	rm := &cobra.Command{
		Use:     "rm ID|NAME",
		Aliases: []string{"delete"},
		Short:   "Delete an ISO (refused while a profile uses it, unless --force)",
		Args:    cobra.ExactArgs(1),
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.DeleteISO(cmd.Context(), args[0], force); err != nil {
				return err // a refusal names the profiles using the ISO and the way out
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", args[0])
			return nil
		}),
	}
	rm.Flags().BoolVar(&force, "force", false, "delete even while profiles use it (they stop booting)")

	cmd.AddCommand(upload, ls, show, add, rm)
	return cmd
}

// interruptedError is the whole message of an upload stopped by Ctrl-C; it unwraps to the
// context's error, which main turns into exit status 130.
type interruptedError struct {
	msg   string
	cause error
}

func (e interruptedError) Error() string { return e.msg }
func (e interruptedError) Unwrap() error { return e.cause }

// detectedSummary is "family version" out of the detection JSON the server stores.
func detectedSummary(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var d struct {
		Family  string `json:"family"`
		Version string `json:"version"`
		Variant string `json:"variant"`
	}
	if json.Unmarshal(raw, &d) != nil || d.Family == "" {
		return ""
	}
	return strings.TrimSpace(d.Family + " " + d.Version)
}

func shortSum(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
