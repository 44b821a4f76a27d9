package worker

import "github.com/linepipe/linepipe/pkg/store"

// latestFollows keeps, per user and channel, the newest follow state of a
// batch, so all of them are written with one statement. On equal event
// times the earlier event in the batch stays, as it would if each were
// written in turn (an update needs a strictly newer time).
type latestFollows struct {
	rows []store.Follow
	at   map[[2]string]int
}

func (l *latestFollows) add(f store.Follow) {
	if l.at == nil {
		l.at = map[[2]string]int{}
	}
	k := [2]string{f.ChannelID, f.UserID}
	if i, ok := l.at[k]; ok {
		if l.rows[i].At.Before(f.At) {
			l.rows[i] = f
		}
		return
	}
	l.at[k] = len(l.rows)
	l.rows = append(l.rows, f)
}
