package bench

import (
	"fmt"
	"path/filepath"

	"github.com/linepipe/linepipe/pkg/natsconf"
)

// Stack knows how to launch linepipe's services against one stream, one
// schema and one LINE endpoint, each as a real process logging to Dir.
type Stack struct {
	// BinDir holds the built ingest, worker and sender binaries (and
	// profiled, when Profile is set).
	BinDir string
	// Dir receives log files (and CPU profiles).
	Dir string
	// Profile runs every service under the profiled wrapper, writing a
	// CPU profile per process into Dir.
	Profile bool

	NATSURL       string
	Stream        string
	SubjectPrefix string
	Replicas      int
	DatabaseURL   string
	ChannelID     string
	ChannelSecret string
	AccessToken   string
	LineAPIURL    string
	// Extra is appended to every service's environment, last, so it
	// overrides what the stack would set.
	Extra []string
	// NATSUsers, when the server runs deploy/nats/nats.conf, are the
	// users ingest, worker and sender connect as.
	NATSUsers *natsconf.Users
	// WorkerDatabaseURL and SenderDatabaseURL, when set, connect those
	// services as their least-privilege login users instead of DatabaseURL.
	WorkerDatabaseURL, SenderDatabaseURL string
}

// natsEnv is how a service connects as user c (nothing without users).
func (s *Stack) natsEnv(c natsconf.Credentials) []string {
	if s.NATSUsers == nil {
		return nil
	}
	return []string{"NATS_USER=" + c.User, "NATS_PASSWORD=" + c.Password}
}

// dbURL is url, or DatabaseURL when url is empty.
func (s *Stack) dbURL(url string) string {
	if url != "" {
		return url
	}
	return s.DatabaseURL
}

func (s *Stack) common() []string {
	rep := s.Replicas
	if rep == 0 {
		rep = 1
	}
	env := []string{
		"NATS_URL=" + s.NATSURL,
		"NATS_STREAM=" + s.Stream,
		"NATS_SUBJECT_PREFIX=" + s.SubjectPrefix,
		fmt.Sprintf("NATS_REPLICAS=%d", rep),
		"LOG_LEVEL=info",
		"SHUTDOWN_GRACE=5s",
	}
	return env
}

func (s *Stack) proc(service, name, addrVar string, env []string) (*Proc, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	p := &Proc{Name: name, Path: filepath.Join(s.BinDir, service), Addr: addr,
		LogPath: filepath.Join(s.Dir, name+".log")}
	if s.Profile {
		p.Path = filepath.Join(s.BinDir, "profiled")
		p.Args = []string{service, filepath.Join(s.Dir, name+".cpu.pprof")}
	}
	p.Env = append(append(append(s.common(), addrVar+"="+addr), env...), s.Extra...)
	return p, nil
}

// Ingest prepares an ingest process serving the stack's one channel.
func (s *Stack) Ingest(name string, env ...string) (*Proc, error) {
	admin, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	base := []string{"LINE_CHANNEL_ID=" + s.ChannelID, "LINE_CHANNEL_SECRET=" + s.ChannelSecret, "INGEST_ADMIN_ADDR=" + admin}
	if s.NATSUsers != nil {
		base = append(base, s.natsEnv(s.NATSUsers.Ingest)...)
	}
	p, err := s.proc("ingest", name, "INGEST_ADDR", append(base, env...))
	if p != nil {
		p.AdminAddr = admin
	}
	return p, err
}

// Worker prepares a worker process.
func (s *Stack) Worker(name string, env ...string) (*Proc, error) {
	base := []string{"DATABASE_URL=" + s.dbURL(s.WorkerDatabaseURL)}
	if s.NATSUsers != nil {
		base = append(base, s.natsEnv(s.NATSUsers.Worker)...)
	}
	return s.proc("worker", name, "WORKER_ADDR", append(base, env...))
}

// Sender prepares a sender process for the stack's channel and LINE URL.
func (s *Stack) Sender(name string, env ...string) (*Proc, error) {
	base := []string{"DATABASE_URL=" + s.dbURL(s.SenderDatabaseURL), "LINE_API_BASE_URL=" + s.LineAPIURL,
		"LINE_CHANNEL_ID=" + s.ChannelID, "LINE_CHANNEL_SECRET=" + s.ChannelSecret,
		"LINE_CHANNEL_ACCESS_TOKEN=" + s.AccessToken}
	if s.NATSUsers != nil {
		// The content fetcher keeps message content in the object store.
		base = append(base, s.natsEnv(s.NATSUsers.Sender)...)
	}
	return s.proc("sender", name, "SENDER_ADDR", append(base, env...))
}
