package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fleetboot/fleetboot/internal/backup"
	"github.com/fleetboot/fleetboot/internal/webui"
)

func newBackupCmd() *cobra.Command {
	var data, images, to string
	cmd := &cobra.Command{
		Use:   "backup --to DIR|FILE.tar",
		Short: "Back up the data directory (database, ISOs, token, assets) while the server runs",
		Long: `backup copies a data directory on this host into a new directory, or a tar file when --to
ends in .tar. The server may keep running: the database is copied as one consistent snapshot
(SQLite VACUUM INTO). Uploaded ISOs and their indexes, the API token and assets/ are copied;
ISOs registered by path (iso add) are recorded with their path, size and sha256 but not
copied — back those files up where they live. Uploads in progress are left out. A server
started with --images DIR keeps its uploaded ISOs there: pass the same --images (with a shared
PostgreSQL database, back the database up with pg_dump and the directory where it lives; this
command backs up SQLite data directories). The backup holds them under isos/, and a restore
puts them in <data>/isos.`,
		Example: `  fleetboot backup --data /var/lib/fleetboot --to /backup/fleetboot-$(date +%F).tar
  fleetboot restore --from /backup/fleetboot-2026-12-03.tar --data /var/lib/fleetboot`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return fmt.Errorf("--to is required: a new directory, or a file name ending in .tar")
			}
			m, err := backup.Create(cmd.Context(), data, images, to, version())
			if err != nil {
				return err
			}
			var bytes int64
			for _, f := range m.Files {
				bytes += f.Size
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "backed up %s to %s: %d files, %s\n", data, to, len(m.Files)+1, webui.HumanBytes(bytes))
			for _, x := range m.ExternalISOs {
				fmt.Fprintf(out, "  not copied (registered by path): ISO %s at %s, sha256 %s\n", x.Name, x.Path, x.SHA256)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "./data", "data directory to back up")
	cmd.Flags().StringVar(&to, "to", "", "new directory, or FILE.tar, to write the backup to")
	cmd.Flags().StringVar(&images, "images", "", "the server's --images directory of uploaded ISOs (default: <data>/isos)")
	return cmd
}

func newRestoreCmd() *cobra.Command {
	var data, from string
	var quick bool
	cmd := &cobra.Command{
		Use:   "restore --from DIR|FILE.tar --data DIR",
		Short: "Restore a backup into an empty data directory",
		Long: `restore checks every file of a backup against its manifest (sha256) and writes it into --data,
which must not exist or be empty; nothing appears there unless the whole backup is good. Then
start the server on it. ISOs registered by path are checked where they were registered (size
and sha256; --quick: size only): the output names those that are missing or changed, and the
profiles using them show as broken in "profile ls".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" {
				return fmt.Errorf("--from is required: a backup directory or .tar file made by fleetboot backup")
			}
			rep, err := backup.Restore(cmd.Context(), from, data, backup.RestoreOptions{SkipExternalHash: quick})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "restored %s into %s: %d files, %s, backed up %s\n", from, data, rep.Files,
				webui.HumanBytes(rep.Bytes), rep.Manifest.Created.Format("2006-01-02 15:04:05 MST"))
			for _, x := range rep.External {
				if x.OK {
					fmt.Fprintf(out, "  ISO %s (registered by path) is there: %s\n", x.Name, x.Path)
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "WARNING: ISO %s registered by path %s: %s\n", x.Name, x.Path, x.Problem)
				}
			}
			if n := rep.Missing(); n > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "WARNING: %d ISO(s) registered by path are not usable; put the files back "+
					"(or re-add them with fleetboot iso add) before machines boot their profiles\n", n)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "./data", "data directory to restore into (must not exist or be empty)")
	cmd.Flags().StringVar(&from, "from", "", "backup directory or .tar file")
	cmd.Flags().BoolVar(&quick, "quick", false, "check ISOs registered by path by size only, not sha256")
	return cmd
}
