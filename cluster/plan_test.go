package cluster

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// Short builders for plan tables: registrar IDs 1..9, raft address "rN".
func voter(id uint32) raft.Server {
	return raft.Server{Suffrage: raft.Voter, ID: ServerID(id), Address: raft.ServerAddress(fmt.Sprintf("r%d", id))}
}

func nonvoter(id uint32) raft.Server {
	s := voter(id)
	s.Suffrage = raft.Nonvoter
	return s
}

func member(id uint32, st MemberStatus) Member {
	return Member{Name: fmt.Sprintf("registrar-%d", id), Meta: Meta{ID: id, Raft: fmt.Sprintf("r%d", id)}, Status: st}
}

// at moves a member to another raft address (a wiped registrar that came
// back under a new ID at the old one's address).
func at(m Member, raftAddr string) Member { m.Meta.Raft = raftAddr; return m }

// describe writes a plan as one line per action, for readable tables.
func describe(as []action) string {
	var b strings.Builder
	for _, a := range as {
		switch a.kind {
		case actionAddVoter:
			fmt.Fprintf(&b, "add %s@%s;", a.server, a.address)
		case actionAddNonvoter:
			fmt.Fprintf(&b, "add-nonvoter %s@%s;", a.server, a.address)
		case actionPromote:
			fmt.Fprintf(&b, "promote %s;", a.server)
		case actionDemote:
			fmt.Fprintf(&b, "demote %s;", a.server)
		case actionRemoveServer, actionHold:
			fmt.Fprintf(&b, "%s %s;", map[actionKind]string{actionRemoveServer: "remove", actionHold: "hold"}[a.kind], a.server)
		case actionTakeover:
			fmt.Fprintf(&b, "takeover %d->%v;", a.owner, a.newHomes)
		}
	}
	return b.String()
}

// Ensure the reconcile plan makes alive registrars voters, removes the
// ones that left and stale servers at a reused address, never below a
// quorum of alive voters, and takes over the PEs of owners that are gone
// and only those.
func TestPlan(t *testing.T) {
	id := func(n uint32) string { return string(ServerID(n)) }
	foreign9 := func(o uint32) bool { return o == 9 }
	tests := []struct {
		name string
		in   reconcileInput
		want string
	}{
		{"nothing to do",
			reconcileInput{self: 1, servers: []raft.Server{voter(1), voter(2)},
				members: []Member{member(1, StatusAlive), member(2, StatusAlive)}, owners: []uint32{1, 2}},
			""},
		{"alive members become voters, in ID order",
			reconcileInput{self: 1, servers: []raft.Server{voter(1)},
				members: []Member{member(3, StatusAlive), member(1, StatusAlive), member(2, StatusAlive)}},
			"add " + id(2) + "@r2;add " + id(3) + "@r3;"},
		{"a non-voter in the configuration is left as it is",
			reconcileInput{self: 1, servers: []raft.Server{voter(1), nonvoter(2)},
				members: []Member{member(1, StatusAlive), member(2, StatusAlive)}},
			""},
		{"a registrar that left is removed",
			reconcileInput{self: 1, servers: []raft.Server{voter(1), voter(2), voter(3)},
				members: []Member{member(1, StatusAlive), member(2, StatusAlive), member(3, StatusLeft)}},
			"remove " + id(3) + ";"},
		{"a failed registrar stays a voter",
			reconcileInput{self: 1, servers: []raft.Server{voter(1), voter(2), voter(3)},
				members: []Member{member(1, StatusAlive), member(2, StatusAlive), member(3, StatusFailed)}},
			""},
		{"the leader never removes itself",
			reconcileInput{self: 1, servers: []raft.Server{voter(1), voter(2), voter(3)},
				members: []Member{member(1, StatusLeft), member(2, StatusAlive), member(3, StatusAlive)}},
			""},
		{"no removal below quorum: a left voter stays while another voter is down",
			reconcileInput{self: 1, servers: []raft.Server{voter(1), voter(2), voter(3)},
				members: []Member{member(1, StatusAlive), member(2, StatusLeft), member(3, StatusFailed)}},
			""},
		{"two left voters are both removed while the alive ones stay a majority",
			reconcileInput{self: 1, servers: []raft.Server{voter(1), voter(2), voter(3), voter(4), voter(5)},
				members: []Member{member(1, StatusAlive), member(2, StatusAlive), member(3, StatusAlive), member(4, StatusLeft), member(5, StatusLeft)}},
			"remove " + id(4) + ";remove " + id(5) + ";"},
		{"left voters stay when 2 of the 4 other voters are alive",
			reconcileInput{self: 1, servers: []raft.Server{voter(1), voter(2), voter(3), voter(4), voter(5)},
				members: []Member{member(1, StatusAlive), member(2, StatusAlive), member(3, StatusLeft), member(4, StatusLeft), member(5, StatusFailed)}},
			""},
		{"removals count only voters that are alive now, not the ones being added",
			reconcileInput{self: 1, servers: []raft.Server{voter(1), voter(2), voter(3)},
				members: []Member{member(1, StatusAlive), member(2, StatusLeft), member(3, StatusFailed), member(4, StatusAlive)}},
			"add " + id(4) + "@r4;"},
		{"a stale server at a reused address is removed before the new registrar is added",
			reconcileInput{self: 1, servers: []raft.Server{voter(1), voter(2), voter(3)},
				members: []Member{member(1, StatusAlive), member(2, StatusAlive), at(member(7, StatusAlive), "r3")}},
			"remove " + id(3) + ";add " + id(7) + "@r3;"},
		{"a stale server is held when its removal would lose quorum",
			reconcileInput{self: 1, servers: []raft.Server{voter(1), voter(2), voter(3)},
				members: []Member{member(1, StatusAlive), member(2, StatusFailed), at(member(7, StatusAlive), "r3")}},
			"hold " + id(3) + ";add " + id(7) + "@r3;"},
		{"a live server at the same address is not stale",
			reconcileInput{self: 1, servers: []raft.Server{voter(1), voter(3)},
				members: []Member{member(1, StatusAlive), member(3, StatusAlive), at(member(7, StatusAlive), "r3")}},
			"add " + id(7) + "@r3;"},
		{"PEs of failed and left owners move to the alive registrars",
			reconcileInput{self: 1, servers: []raft.Server{voter(1), voter(2), voter(3), voter(4), voter(5)},
				members: []Member{member(1, StatusAlive), member(2, StatusAlive), member(3, StatusFailed), member(4, StatusLeft), member(5, StatusAlive)},
				owners:  []uint32{1, 3, 4, 5}},
			"remove " + id(4) + ";takeover 3->[1 2 5];takeover 4->[1 2 5];"},
		{"an owner gossip does not know is taken over only after the grace",
			reconcileInput{self: 1, servers: []raft.Server{voter(1)}, members: []Member{member(1, StatusAlive)}, owners: []uint32{6}},
			""},
		{"an owner gossip does not know, after the grace",
			reconcileInput{self: 1, servers: []raft.Server{voter(1)}, members: []Member{member(1, StatusAlive)}, owners: []uint32{6}, graceOver: true},
			"takeover 6->[1];"},
		{"a foreign ENRP registrar's PEs stay",
			reconcileInput{self: 1, servers: []raft.Server{voter(1)}, members: []Member{member(1, StatusAlive)}, owners: []uint32{9},
				isForeign: foreign9, graceOver: true},
			""},
		{"a member that is alive under one name counts as alive",
			reconcileInput{self: 1, servers: []raft.Server{voter(1), voter(2)},
				members: []Member{member(1, StatusAlive), member(2, StatusAlive), {Name: "old-2", Meta: Meta{ID: 2, Raft: "r2"}, Status: StatusFailed}},
				owners:  []uint32{2}},
			""},
		{"no takeover without an alive registrar to take the PEs",
			reconcileInput{self: 1, servers: []raft.Server{voter(1)}, members: []Member{member(3, StatusFailed)}, owners: []uint32{3}},
			""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.in.voters == 0 {
				tc.in.voters = MaxVoters // these cases are about other steps
			}
			got := plan(tc.in)
			if d := describe(got); d != tc.want {
				t.Fatalf("plan:\n got  %s\n want %s", d, tc.want)
			}
			if again := plan(tc.in); !reflect.DeepEqual(again, got) {
				t.Errorf("plan is not deterministic: %s then %s", describe(got), describe(again))
			}
		})
	}
}

// Ensure no removal or demotion the plan makes takes raft below a quorum
// of alive voters, whatever the statuses and the configured number of
// voters: every combination of 5 voters' statuses, a healthy non-voter
// and a sixth registrar that joins, for 1 to 7 voters.
func TestPlan_NeverBelowQuorum(t *testing.T) {
	statuses := []MemberStatus{StatusAlive, StatusFailed, StatusLeft}
	servers := []raft.Server{voter(1), voter(2), voter(3), voter(4), voter(5), nonvoter(7)}
	combos := 1
	for range 5 {
		combos *= len(statuses)
	}
	removals, demotions := 0, 0
	for target := 1; target <= MaxVoters; target++ {
		for c := 0; c < combos; c++ {
			members := []Member{member(6, StatusAlive), member(7, StatusAlive)}
			alive := map[raft.ServerID]bool{ServerID(6): true, ServerID(7): true}
			for i, k := 0, c; i < 5; i, k = i+1, k/len(statuses) {
				st := statuses[k%len(statuses)]
				members = append(members, member(uint32(i+1), st))
				alive[ServerID(uint32(i+1))] = st == StatusAlive
			}
			self := uint32(1)
			if !alive[ServerID(1)] {
				continue // the leader is alive
			}
			before, after := 0, map[raft.ServerID]bool{}
			for _, s := range servers[:5] {
				after[s.ID] = true
				if alive[s.ID] {
					before++
				}
			}
			in := reconcileInput{self: self, servers: servers, members: members, voters: target,
				healthy: healthyFor(time.Minute, 7), stable: time.Second}
			for _, a := range plan(in) {
				switch a.kind {
				case actionRemoveServer:
					delete(after, a.server)
					removals++
				case actionDemote:
					delete(after, a.server)
					demotions++
				}
			}
			up := 0
			for id := range after {
				if alive[id] {
					up++
				}
			}
			quorate := before > 5/2
			if quorate && up <= len(after)/2 {
				t.Errorf("voters %d, statuses %v: the plan leaves %d voters with %d alive (not counting promotions)", target, members[2:], len(after), up)
			}
		}
	}
	if removals == 0 || demotions == 0 {
		t.Errorf("%d removals and %d demotions in all combinations: the check saw too little", removals, demotions)
	}
}

// healthyFor builds the leader's health observations: non-voter id has
// been healthy for d.
func healthyFor(d time.Duration, ids ...uint32) map[raft.ServerID]time.Duration {
	m := map[raft.ServerID]time.Duration{}
	for _, id := range ids {
		m[ServerID(id)] = d
	}
	return m
}

// Ensure the plan keeps the configured number of voters: registrars
// beyond it join as non-voters, a non-voter is promoted only when a voter
// is down and only once it has been healthy for the stabilization time,
// a voter that is not alive is demoted once a replacement is promoted,
// extra voters are demoted (never the leader, never below quorum), and
// a failed non-voter is left alone.
func TestPlan_NonVoters(t *testing.T) {
	id := func(n uint32) string { return string(ServerID(n)) }
	const stable = 10 * time.Second
	alive := func(ids ...uint32) []Member {
		var out []Member
		for _, i := range ids {
			out = append(out, member(i, StatusAlive))
		}
		return out
	}
	with := func(ms []Member, more ...Member) []Member { return append(ms, more...) }
	tests := []struct {
		name string
		in   reconcileInput
		want string
	}{
		{"registrars beyond the voters join as non-voters",
			reconcileInput{self: 1, voters: 3, servers: []raft.Server{voter(1)}, members: alive(1, 2, 3, 4, 5)},
			"add " + id(2) + "@r2;add " + id(3) + "@r3;add-nonvoter " + id(4) + "@r4;add-nonvoter " + id(5) + "@r5;"},
		{"a full set of voters: nothing to do, however healthy the non-voters",
			reconcileInput{self: 1, voters: 3, servers: []raft.Server{voter(1), voter(2), voter(3), nonvoter(4)},
				members: alive(1, 2, 3, 4), healthy: healthyFor(time.Hour, 4), stable: stable},
			""},
		{"a failed voter is replaced by a stable healthy non-voter, then demoted",
			reconcileInput{self: 1, voters: 3, servers: []raft.Server{voter(1), voter(2), voter(3), nonvoter(4), nonvoter(5)},
				members: with(alive(1, 2, 4, 5), member(3, StatusFailed)), healthy: healthyFor(stable, 4, 5), stable: stable},
			"promote " + id(4) + ";demote " + id(3) + ";"},
		{"no promotion before the non-voter has been healthy for the stabilization time",
			reconcileInput{self: 1, voters: 3, servers: []raft.Server{voter(1), voter(2), voter(3), nonvoter(4)},
				members: with(alive(1, 2, 4), member(3, StatusFailed)), healthy: healthyFor(stable-time.Millisecond, 4), stable: stable},
			""},
		{"an unhealthy non-voter is not promoted, a healthy one with a higher ID is",
			reconcileInput{self: 1, voters: 3, servers: []raft.Server{voter(1), voter(2), voter(3), nonvoter(4), nonvoter(5)},
				members: with(alive(1, 2, 4, 5), member(3, StatusFailed)), healthy: healthyFor(stable, 5), stable: stable},
			"promote " + id(5) + ";demote " + id(3) + ";"},
		{"a non-voter that gossip does not see alive is not promoted",
			reconcileInput{self: 1, voters: 3, servers: []raft.Server{voter(1), voter(2), voter(3), nonvoter(4)},
				members: with(alive(1, 2), member(3, StatusFailed), member(4, StatusFailed)), healthy: healthyFor(stable, 4), stable: stable},
			""},
		{"two failed voters of five: two promotions, two demotions",
			reconcileInput{self: 1, voters: 5, servers: []raft.Server{voter(1), voter(2), voter(3), voter(4), voter(5), nonvoter(6), nonvoter(7)},
				members: with(alive(1, 2, 3, 6, 7), member(4, StatusFailed), member(5, StatusFailed)), healthy: healthyFor(stable, 6, 7), stable: stable},
			"promote " + id(6) + ";promote " + id(7) + ";demote " + id(5) + ";demote " + id(4) + ";"},
		{"a voter that left is removed and a non-voter takes its place",
			reconcileInput{self: 1, voters: 3, servers: []raft.Server{voter(1), voter(2), voter(3), nonvoter(4)},
				members: with(alive(1, 2, 4), member(3, StatusLeft)), healthy: healthyFor(stable, 4), stable: stable},
			"remove " + id(3) + ";promote " + id(4) + ";"},
		{"a non-voter that left is removed",
			reconcileInput{self: 1, voters: 3, servers: []raft.Server{voter(1), voter(2), voter(3), nonvoter(4)},
				members: with(alive(1, 2, 3), member(4, StatusLeft))},
			"remove " + id(4) + ";"},
		{"a failed non-voter stays (it may come back)",
			reconcileInput{self: 1, voters: 3, servers: []raft.Server{voter(1), voter(2), voter(3), nonvoter(4)},
				members: with(alive(1, 2, 3), member(4, StatusFailed))},
			""},
		{"too few voters and no non-voter: a failed voter stays a voter",
			reconcileInput{self: 1, voters: 3, servers: []raft.Server{voter(1), voter(2), voter(3)},
				members: with(alive(1, 2), member(3, StatusFailed))},
			""},
		{"more voters than configured: the highest alive IDs are demoted",
			reconcileInput{self: 1, voters: 3, servers: []raft.Server{voter(1), voter(2), voter(3), voter(4), voter(5)},
				members: alive(1, 2, 3, 4, 5)},
			"demote " + id(5) + ";demote " + id(4) + ";"},
		{"the leader is never demoted",
			reconcileInput{self: 3, voters: 1, servers: []raft.Server{voter(1), voter(2), voter(3)}, members: alive(1, 2, 3)},
			"demote " + id(2) + ";demote " + id(1) + ";"},
		{"extra voters: the dead ones go first",
			reconcileInput{self: 1, voters: 3, servers: []raft.Server{voter(1), voter(2), voter(3), voter(4), voter(5)},
				members: with(alive(1, 3, 4, 5), member(2, StatusFailed))},
			"demote " + id(2) + ";demote " + id(5) + ";"},
		{"demotions down to one voter keep a quorum at every step",
			reconcileInput{self: 1, voters: 1, servers: []raft.Server{voter(1), voter(2), voter(3), voter(4), voter(5)},
				members: with(alive(1, 2, 3), member(4, StatusFailed), member(5, StatusFailed))},
			"demote " + id(5) + ";demote " + id(4) + ";demote " + id(3) + ";demote " + id(2) + ";"},
		{"extra voters: the dead ones are demoted and no alive one",
			reconcileInput{self: 1, voters: 3, servers: []raft.Server{voter(1), voter(2), voter(3), voter(4), voter(5)},
				members: with(alive(1, 2, 3), member(4, StatusFailed), member(5, StatusFailed))},
			"demote " + id(5) + ";demote " + id(4) + ";"},
		{"a registrar that comes back after its demotion stays a non-voter",
			reconcileInput{self: 1, voters: 3, servers: []raft.Server{voter(1), voter(2), voter(4), nonvoter(3)},
				members: alive(1, 2, 3, 4), healthy: healthyFor(time.Hour, 3), stable: stable},
			""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := plan(tc.in)
			if d := describe(got); d != tc.want {
				t.Fatalf("plan:\n got  %s\n want %s", d, tc.want)
			}
			if again := plan(tc.in); !reflect.DeepEqual(again, got) {
				t.Errorf("plan is not deterministic: %s then %s", describe(got), describe(again))
			}
		})
	}
}
