package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestNodeLifecycleThroughTheAPI(t *testing.T) {
	f := newFixture(t)
	key, group := f.setup()

	res := f.api.As(developer).Route("POST "+nodesPath, f.org()...).Header("Idempotency-Key", "launch-1").JSON(nodeBody(f.acc, key, group)).Do().Expect(http.StatusAccepted)
	n := res.Map()
	id, instance := n["id"].(string), n["instanceId"].(string)
	if n["status"] != "provisioning" && n["status"] != "running" || instance == "" || res.Header["Location"] != "/v1/orgs/"+f.orgID+"/worker-nodes/"+id {
		t.Fatalf("created = %v %v", n, res.Header)
	}
	// The same request again (a retry) is the same node: one instance.
	again := f.api.As(developer).Route("POST "+nodesPath, f.org()...).Header("Idempotency-Key", "launch-1").JSON(nodeBody(f.acc, key, group)).Do().Expect(http.StatusAccepted).Map()
	if again["id"] != id || again["instanceId"] != instance {
		t.Fatalf("retry made another node: %v", again)
	}
	out, err := customerEC2(t).DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{
		Filters: []types.Filter{{Name: aws.String("tag:dflow:node"), Values: []string{id}}},
	})
	if err != nil || len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		t.Fatalf("instances for the node: %+v %v", out.Reservations, err)
	}

	// What was launched: IMDSv2, the key, tags at creation.
	inst := f.instance(instance)
	if inst.MetadataOptions.HttpTokens != types.HttpTokensStateRequired || aws.ToString(inst.KeyName) == "" {
		t.Fatalf("instance %+v", inst)
	}
	tags := map[string]string{}
	for _, tg := range inst.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if tags["dflow:managed"] != "true" || tags["dflow:org"] != f.orgID || tags["dflow:node"] != id || tags["Name"] != "web-1" {
		t.Fatalf("tags %v", tags)
	}

	got := f.api.As(viewer).Route("GET "+nodesPath+"/{nodeId}", f.org("nodeId", id)...).Do().Expect(http.StatusOK).Map()
	conn := got["connection"].(map[string]any)
	if got["status"] != "running" || conn["username"] != "ec2-user" || conn["port"] != float64(22) || conn["sshKeyId"] != key {
		t.Fatalf("node = %v", got)
	}

	// The group is in use: it cannot go.
	r := f.api.As(admin).Route("DELETE "+groupsPath+"/{groupId}", f.org("groupId", group)...).Do().Expect(http.StatusConflict)
	if r.Code() != "group_in_use" {
		t.Fatal(r)
	}

	for _, step := range []struct{ action, state string }{{"stop", "stopped"}, {"start", "running"}, {"reboot", "running"}} {
		f.api.As(developer).Route("POST "+nodesPath+"/{nodeId}/actions", f.org("nodeId", id)...).JSON(map[string]any{"action": step.action}).Do().Expect(http.StatusAccepted)
		if s := f.instance(instance).State.Name; string(s) != step.state {
			t.Fatalf("after %s: %s", step.action, s)
		}
	}
	f.api.As(developer).Route("POST "+nodesPath+"/{nodeId}/actions", f.org("nodeId", id)...).JSON(map[string]any{"action": "explode"}).Do().Expect(http.StatusBadRequest)

	// A Developer may not terminate (no workerNodes.delete); an Admin may.
	f.api.As(developer).Route("DELETE "+nodesPath+"/{nodeId}", f.org("nodeId", id)...).Do().Expect(http.StatusForbidden)
	f.api.As(admin).Route("DELETE "+nodesPath+"/{nodeId}", f.org("nodeId", id)...).Do().Expect(http.StatusAccepted)
	if s := f.instance(instance).State.Name; s != types.InstanceStateNameTerminated {
		t.Fatalf("after delete: %s", s)
	}
	if got := f.api.As(viewer).Route("GET "+nodesPath+"/{nodeId}", f.org("nodeId", id)...).Do().Expect(http.StatusOK).Map(); got["status"] != "terminated" {
		t.Fatalf("node = %v", got)
	}
	// Free again: the group and the key go, with their AWS counterparts.
	f.api.As(admin).Route("DELETE "+groupsPath+"/{groupId}", f.org("groupId", group)...).Do().Expect(http.StatusNoContent)
	f.api.As(admin).Route("DELETE "+keysPath+"/{keyId}", f.org("keyId", key)...).Do().Expect(http.StatusNoContent)
	pairs, err := customerEC2(t).DescribeKeyPairs(context.Background(), &ec2.DescribeKeyPairsInput{})
	if err != nil || len(pairs.KeyPairs) != 0 {
		t.Fatalf("key pairs left: %+v %v", pairs.KeyPairs, err)
	}

	// The schedule's job answers a summary.
	sum, err := f.h.Jobs()["reconcile-nodes"](context.Background())
	if err != nil || sum == nil {
		t.Fatalf("reconcile: %v %v", sum, err)
	}
}

func TestProvisioningAccess(t *testing.T) {
	f := newFixture(t)
	key, group := f.setup()
	// Viewers read; they launch nothing.
	f.api.As(viewer).Route("POST "+nodesPath, f.org()...).JSON(nodeBody(f.acc, key, group)).Do().Expect(http.StatusForbidden)
	f.api.As(viewer).Route("GET "+keysPath, f.org()...).Do().Expect(http.StatusOK)
	f.api.As(viewer).Route("POST "+keysPath, f.org()...).JSON(map[string]any{"name": "x", "publicKey": publicKey(t)}).Do().Expect(http.StatusForbidden)
	// The environment must be one the link allows.
	body := nodeBody(f.acc, key, group)
	body["environment"] = "staging"
	if r := f.api.As(admin).Route("POST "+nodesPath, f.org()...).JSON(body).Do().Expect(http.StatusUnprocessableEntity); r.Code() != "environment_not_allowed" {
		t.Fatal(r)
	}
	// A private key is refused, and not echoed.
	priv := "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----"
	r := f.api.As(admin).Route("POST "+keysPath, f.org()...).JSON(map[string]any{"name": "oops", "publicKey": priv}).Do().Expect(http.StatusBadRequest)
	if r.Code() != "private_key_rejected" || contains(string(r.Body), "b3BlbnNzaC1rZXkt") || contains(f.env.Logs.String(), "b3BlbnNzaC1rZXkt") {
		t.Fatal(r)
	}
	// Another organisation sees nothing of this one.
	for _, route := range []struct{ key, param, id string }{
		{"GET " + keysPath + "/{keyId}", "keyId", key},
		{"GET " + groupsPath + "/{groupId}", "groupId", group},
	} {
		f.api.As(stranger).Route(route.key, f.org(route.param, route.id)...).Do().Expect(http.StatusNotFound)
	}
	f.api.As("").Route("GET "+nodesPath, f.org()...).Do().Expect(http.StatusUnauthorized)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
