package lambdatest

import (
	"strings"
	"testing"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/samtemplate"
)

func TestParseInitDuration(t *testing.T) {
	tests := []struct {
		name    string
		log     string
		want    time.Duration
		wantErr string
	}{
		{
			name: "success",
			log: "04 Dec 2026 16:26:57,532 [INFO] (rapid) INIT START(type: on-demand, phase: init)\n" +
				"04 Dec 2026 16:26:57,537 [INFO] (rapid) INIT RTDONE(status: success)\n" +
				"04 Dec 2026 16:26:57,537 [INFO] (rapid) INIT REPORT(durationMs: 5.468000)\n" +
				"REPORT RequestId: 631a\tInit Duration: 0.03 ms\tDuration: 6.88 ms\t\n",
			want: 5468 * time.Microsecond,
		},
		{
			// RIE retries init in the invoke phase and reports that too; the
			// first report is the cold start, and it failed.
			name: "failed init",
			log: "(rapid) INIT RTDONE(status: error)\n(rapid) INIT REPORT(durationMs: 10.094000)\n" +
				"(rapid) INIT START(type: on-demand, phase: invoke)\n(rapid) INIT REPORT(durationMs: 0.026000)\n",
			wantErr: "init failed",
		},
		{name: "not yet", log: "(rapid) INIT START(type: on-demand, phase: init)\n", wantErr: "no INIT REPORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseInitDuration(tt.log)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

const stackTemplate = `
Globals:
  Function:
    Timeout: 15
    Environment:
      Variables:
        TABLE_NAME: !Ref AppTable
        SECRET_PREFIX: !Sub "dflow/${AWS::StackName}"
        STAGE: !Ref Stage
        LOG_LEVEL: INFO
Resources:
  AppTable:
    Type: AWS::DynamoDB::Table
  OneFunction:
    Type: AWS::Serverless::Function
    Properties:
      MemorySize: 512
      Environment:
        Variables:
          LOG_LEVEL: DEBUG
          RETRIES: 3
          ARNS: !Join [",", [!Sub "arn:${AWS::Partition}:iam::${AWS::AccountId}:root", !Sub ["${X}-${!Literal}", {X: !Ref Stage}]]]
  TwoFunction:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          ROLE: !GetAtt SomeRole.Arn
          QUEUE: !Ref Queue
`

func TestStackVars(t *testing.T) {
	tpl, err := samtemplate.Parse([]byte(stackTemplate))
	if err != nil {
		t.Fatal(err)
	}
	s := Stack{Name: "st", Region: "eu-west-1", AccountID: "111122223333", Refs: map[string]string{"AppTable": "tbl", "Stage": "dev"}}

	one, _ := tpl.Function("OneFunction")
	got, err := s.Vars(tpl, one)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"TABLE_NAME": "tbl", "SECRET_PREFIX": "dflow/st", "STAGE": "dev", "LOG_LEVEL": "DEBUG", "RETRIES": "3",
		"ARNS": "arn:aws:iam::111122223333:root,dev-${Literal}",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if mem, timeout := settings(tpl, "OneFunction"); mem != 512 || timeout != 15 {
		t.Errorf("settings = %d MB, %d s; want 512 MB, 15 s", mem, timeout)
	}

	two, _ := tpl.Function("TwoFunction")
	_, err = s.Vars(tpl, two)
	if err == nil {
		t.Fatal("want an error for GetAtt and an unknown Ref")
	}
	for _, name := range []string{"ROLE", "QUEUE", "Fn::GetAtt", "Ref Queue"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestHTTPEvent(t *testing.T) {
	e := WithJSON(HTTPEvent("PUT /v1/orgs/{orgId}/members/{userId}", map[string]string{"orgId": "org_x", "userId": "bob"}), "{}")
	if e.RawPath != "/v1/orgs/org_x/members/bob" || e.RequestContext.HTTP.Path != e.RawPath {
		t.Errorf("path %q / %q", e.RawPath, e.RequestContext.HTTP.Path)
	}
	if e.RequestContext.HTTP.Method != "PUT" || e.RequestContext.RouteKey != e.RouteKey {
		t.Errorf("method %q, route key %q", e.RequestContext.HTTP.Method, e.RequestContext.RouteKey)
	}
	if e.RequestContext.RequestID == "" || e.RequestContext.Authorizer != nil {
		t.Errorf("request id %q, authorizer %v", e.RequestContext.RequestID, e.RequestContext.Authorizer)
	}
	for k := range e.Headers {
		if k != strings.ToLower(k) {
			t.Errorf("header %q is not lower-case", k)
		}
	}
}
