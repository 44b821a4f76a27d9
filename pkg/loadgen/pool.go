package loadgen

import "sync"

// sentMessage is a message the server accepted, kept so an unsend can
// name it from the same chat.
type sentMessage struct {
	messageID string
	text      string
	source    wireSource
	eventID   string
}

// sentPool is a bounded set of accepted messages. When full, a new
// message replaces a random one, so memory stays flat and unsends still
// reach back over the whole run, not only its latest messages.
type sentPool struct {
	mu    sync.Mutex
	limit int
	rnd   *lockedRand
	items []*sentMessage
}

func newSentPool(limit int, rnd *lockedRand) *sentPool {
	return &sentPool{limit: limit, rnd: rnd}
}

func (p *sentPool) add(m *sentMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.items) < p.limit {
		p.items = append(p.items, m)
		return
	}
	p.items[p.rnd.IntN(len(p.items))] = m
}

// take removes and returns a random message, or nil when empty. A message
// is unsent at most once.
func (p *sentPool) take() *sentMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.items)
	if n == 0 {
		return nil
	}
	i := p.rnd.IntN(n)
	m := p.items[i]
	p.items[i] = p.items[n-1]
	p.items = p.items[:n-1]
	return m
}

func (p *sentPool) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.items)
}
