package health

import (
	"fmt"
	"slices"
	"sync"
)

// memPool is an in-memory Pool that keeps the members it is given and
// records every call, so tests can check both the end state and the order
// of changes.
type memPool struct {
	mu      sync.Mutex
	members map[string]memMember
	calls   []string
	refuse  error // if set, Upsert returns it
}

type memMember struct {
	Member
	State MemberState
}

func newMemPool() *memPool { return &memPool{members: map[string]memMember{}} }

func (p *memPool) Upsert(m Member) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refuse != nil {
		return p.refuse
	}
	old, ok := p.members[m.ID]
	st := StateReady
	if ok {
		st = old.State
		if m.Weight == 0 {
			m.Weight = old.Weight
		}
	} else {
		p.calls = append(p.calls, "add "+m.ID)
	}
	p.members[m.ID] = memMember{Member: m, State: st}
	return nil
}

func (p *memPool) SetState(id string, s MemberState) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.members[id]
	if !ok {
		return fmt.Errorf("set state %s: unknown member", id)
	}
	m.State = s
	p.members[id] = m
	p.calls = append(p.calls, fmt.Sprintf("%s %s", s, id))
	return nil
}

func (p *memPool) Remove(id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.members[id]; !ok {
		return fmt.Errorf("remove %s: unknown member", id)
	}
	delete(p.members, id)
	p.calls = append(p.calls, "remove "+id)
	return nil
}

// state returns member id's state, or "" if the pool does not hold it.
func (p *memPool) state(id string) MemberState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.members[id].State
}

func (p *memPool) member(id string) (memMember, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.members[id]
	return m, ok
}

func (p *memPool) log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

var errRefusedForTest = fmt.Errorf("test pool refuses members")
