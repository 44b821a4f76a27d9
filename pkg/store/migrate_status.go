package store

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteMigrationStatus prints states as `worker migrate status` shows
// them: one line per migration, applied or pending, and a last line that
// says whether this binary's schema is complete.
func WriteMigrationStatus(w io.Writer, states []MigrationState) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tSHA256")
	pending, changed := 0, 0
	for _, s := range states {
		state, at, sum := "pending", "-", s.Checksum
		switch {
		case s.Changed():
			state, changed = "CHANGED", changed+1
			sum = fmt.Sprintf("%s (applied %s)", s.Checksum, s.AppliedChecksum)
		case s.Applied && !s.Known:
			state, sum = "applied (newer than this binary)", s.AppliedChecksum
		case s.Applied:
			state = "applied"
		default:
			pending++
		}
		if s.Applied {
			at = s.AppliedAt.UTC().Format(time.RFC3339)
		}
		if len(sum) > 12 && !s.Changed() {
			sum = sum[:12]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Version, state, at, sum)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case changed > 0:
		_, err := fmt.Fprintf(w, "%d applied migration(s) changed since they were applied: migrate refuses to run\n", changed)
		return err
	case pending > 0:
		_, err := fmt.Fprintf(w, "%d pending: run `worker migrate`\n", pending)
		return err
	default:
		_, err := fmt.Fprintln(w, "schema up to date")
		return err
	}
}
