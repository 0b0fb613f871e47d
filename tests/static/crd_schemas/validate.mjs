// Validates custom resources read as JSON lines on stdin against their projects' API schemas
// (@kubernetes-models/cert-manager and @kubernetes-models/prometheus-operator). Prints one line
// per object: "ok KIND NAME" or "invalid KIND NAME: reason"; exits 1 when any object is invalid
// or of a kind this checker does not know.
import { createInterface } from "node:readline";
import * as certManager from "@kubernetes-models/cert-manager/cert-manager.io/v1";
import * as monitoring from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const APIS = { "cert-manager.io/v1": certManager, "monitoring.coreos.com/v1": monitoring };

let failed = false;
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const object = JSON.parse(line);
  const name = `${object.kind} ${object.metadata?.name}`;
  const Model = APIS[object.apiVersion]?.[object.kind];
  if (!Model) {
    console.log(`invalid ${name}: not a kind of ${Object.keys(APIS).join(" or ")}`);
    failed = true;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`ok ${name}`);
  } catch (error) {
    console.log(`invalid ${name}: ${error.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
