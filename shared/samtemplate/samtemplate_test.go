package samtemplate

import (
	"reflect"
	"testing"
)

const fixture = `
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Environment:
      Variables:
        TABLE_NAME: !Ref AppTable
        STAGE: !Ref Stage
Resources:
  AppTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TimeToLiveSpecification: {AttributeName: expiresAt, Enabled: true}
  WidgetsFunction:
    Type: AWS::Serverless::Function
    Properties:
      Role: !GetAtt WidgetsRole.Arn
      Events:
        GetWidget:
          Type: HttpApi
          Properties: {ApiId: !Ref HttpApi, Method: get, Path: "/v1/widgets/{widgetId}"}
        Sweep:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: rate(1 hour)
            Input: '{"job":"sweep"}'
`

func TestParse(t *testing.T) {
	tpl, err := Parse([]byte(fixture))
	if err != nil {
		t.Fatal(err)
	}
	f, ok := tpl.Function("WidgetsFunction")
	if !ok {
		t.Fatalf("function not found in %+v", tpl.Functions)
	}
	if f.Dir != "functions/widgets" {
		t.Errorf("Dir = %q", f.Dir)
	}
	if want := []Route{{Event: "GetWidget", Method: "GET", Path: "/v1/widgets/{widgetId}"}}; !reflect.DeepEqual(f.Routes, want) {
		t.Errorf("Routes = %+v", f.Routes)
	}
	if f.Routes[0].Key() != "GET /v1/widgets/{widgetId}" {
		t.Errorf("Key = %q", f.Routes[0].Key())
	}
	if want := []Schedule{{Event: "Sweep", Expression: "rate(1 hour)", Input: `{"job":"sweep"}`}}; !reflect.DeepEqual(f.Schedules, want) {
		t.Errorf("Schedules = %+v", f.Schedules)
	}
	if got := tpl.GlobalEnv()["TABLE_NAME"]; !reflect.DeepEqual(got, map[string]any{"Ref": "AppTable"}) {
		t.Errorf("TABLE_NAME = %#v", got)
	}
	ttl := tpl.Resources["AppTable"]["Properties"].(map[string]any)["TimeToLiveSpecification"].(map[string]any)
	if ttl["Enabled"] != true {
		t.Errorf("plain YAML booleans must stay booleans: %#v", ttl["Enabled"])
	}
	props := tpl.Resources["WidgetsFunction"]["Properties"].(map[string]any)
	if got := props["Role"]; !reflect.DeepEqual(got, map[string]any{"Fn::GetAtt": []any{"WidgetsRole", "Arn"}}) {
		t.Errorf("Role = %#v", got)
	}
}
