// Validates prometheus-operator objects read as JSON lines on stdin against its API schemas
// (@kubernetes-models/prometheus-operator, generated from the operator's CRDs). Prints one line
// per object: "ok KIND NAME" or "invalid KIND NAME: reason"; exits 1 when any object is invalid
// or of an unknown kind.
import { createInterface } from "node:readline";
import * as monitoring from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

let failed = false;
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const object = JSON.parse(line);
  const name = `${object.kind} ${object.metadata?.name}`;
  const Model = object.apiVersion === "monitoring.coreos.com/v1" ? monitoring[object.kind] : undefined;
  if (!Model) {
    console.log(`invalid ${name}: not a monitoring.coreos.com/v1 kind`);
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
