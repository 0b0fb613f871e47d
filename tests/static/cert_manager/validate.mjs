// Validates cert-manager objects read as JSON lines on stdin against cert-manager's API schemas
// (@kubernetes-models/cert-manager). Prints one line per object: "ok KIND NAME" or
// "invalid KIND NAME: reason"; exits 1 when any object is invalid or of an unknown kind.
import { createInterface } from "node:readline";
import * as certManager from "@kubernetes-models/cert-manager/cert-manager.io/v1";

let failed = false;
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const object = JSON.parse(line);
  const name = `${object.kind} ${object.metadata?.name}`;
  const Model = object.apiVersion === "cert-manager.io/v1" ? certManager[object.kind] : undefined;
  if (!Model) {
    console.log(`invalid ${name}: not a cert-manager.io/v1 kind`);
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
