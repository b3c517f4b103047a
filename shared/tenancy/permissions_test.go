package tenancy

import (
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

func TestBuiltinRoles(t *testing.T) {
	roles := map[string]Role{}
	for _, r := range BuiltinRoles("org_x", time.Now()) {
		roles[r.ID] = r
	}
	tests := []struct {
		role string
		c    Collection
		a    Action
		want bool
	}{
		{AdminRoleID, CloudProviderAccounts, Rotate, true},
		{AdminRoleID, Team, Delete, true},
		{DeveloperRoleID, WorkerNodes, Create, true},
		{DeveloperRoleID, WorkerNodes, Update, true},
		{DeveloperRoleID, WorkerNodes, Delete, false},
		{DeveloperRoleID, CloudProviderAccounts, Create, false},
		{DeveloperRoleID, Audit, Read, true},
		{ViewerRoleID, SSHKeys, Read, true},
		{ViewerRoleID, SSHKeys, Create, false},
		{ViewerRoleID, CloudProviderAccounts, Rotate, false},
	}
	for _, tt := range tests {
		if got := roles[tt.role].Allows(tt.c, tt.a); got != tt.want {
			t.Errorf("%s %s.%s = %v", tt.role, tt.c, tt.a, got)
		}
	}
	for _, c := range Collections {
		if !roles[ViewerRoleID].Allows(c, Read) || !roles[DeveloperRoleID].Allows(c, Read) {
			t.Errorf("viewer/developer cannot read %s", c)
		}
	}
	if !roles[AdminRoleID].IsAdmin() || roles[ViewerRoleID].IsAdmin() {
		t.Error("IsAdmin")
	}
}

func TestCovers(t *testing.T) {
	mine := Permissions{
		WorkerNodes: {Read: true, Create: true, CreateLimit: 3, ReadScope: ScopeOwn},
		Team:        {Read: true},
	}
	tests := []struct {
		name string
		want Permissions
		ok   bool
	}{
		{"nothing", Permissions{}, true},
		{"same", mine, true},
		{"less", Permissions{Team: {Read: true}}, true},
		{"more action", Permissions{Team: {Read: true, Update: true}}, false},
		{"other collection", Permissions{Roles: {Read: true}}, false},
		{"uncapped nodes", Permissions{WorkerNodes: {Create: true, CreateLimit: 0, ReadScope: ScopeOwn}}, false},
		{"bigger cap", Permissions{WorkerNodes: {Create: true, CreateLimit: 4, ReadScope: ScopeOwn}}, false},
		{"smaller cap", Permissions{WorkerNodes: {Create: true, CreateLimit: 2, ReadScope: ScopeOwn}}, true},
		{"wider scope", Permissions{WorkerNodes: {Read: true, ReadScope: ScopeAll}}, false},
	}
	for _, tt := range tests {
		if ok, excess := mine.Covers(tt.want); ok != tt.ok {
			t.Errorf("%s: Covers = %v (%s)", tt.name, ok, excess)
		}
	}
}

func TestParsePermissions(t *testing.T) {
	p, problems := ParsePermissions("permissions", map[string]GrantInput{
		"workerNodes":           {Create: ptr(true), CreateLimit: ptr(5), ReadScope: ptr("own")},
		"cloudProviderAccounts": {Rotate: ptr(true)},
	})
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	if g := p[WorkerNodes]; !g.Create || g.CreateLimit != 5 || g.ReadScope != ScopeOwn || g.Read {
		t.Errorf("workerNodes = %+v", g)
	}
	if !p.Allows(CloudProviderAccounts, Rotate) || p.Allows(CloudProviderAccounts, Read) {
		t.Errorf("accounts = %+v", p[CloudProviderAccounts])
	}
	// Every collection is present after parsing, granting nothing unless listed.
	if len(p) != len(Collections) || p.Allows(Team, Read) {
		t.Errorf("normalized = %+v", p)
	}
	_, problems = ParsePermissions("permissions", map[string]GrantInput{
		"audit":       {Rotate: ptr(true)},
		"workerNodes": {CreateLimit: ptr(MaxCreateLimit + 1)},
		"robots":      {Read: ptr(true)},
	})
	fields := map[string]bool{}
	for _, p := range problems {
		fields[p.Field] = true
	}
	for _, f := range []string{"permissions.audit.rotate", "permissions.workerNodes.createLimit", "permissions.robots"} {
		if !fields[f] {
			t.Errorf("no problem for %s in %v", f, problems)
		}
	}
}
