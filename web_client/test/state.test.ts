import { describe, expect, it } from "vitest";
import { can, InvalidTransition, type Phase, type PhaseEvent, transition } from "../src/state.js";

describe("transition", () => {
  it.each<[Phase, PhaseEvent, Phase]>([
    ["idle", "start", "running"],
    ["running", "succeed", "done"],
    ["running", "fail", "error"],
    ["running", "cancel", "cancelled"],
    ["done", "start", "running"],
    ["error", "start", "running"],
    ["cancelled", "start", "running"],
  ])("%s --%s--> %s", (from, event, to) => {
    expect(can(from, event)).toBe(true);
    expect(transition(from, event)).toBe(to);
  });

  it.each<[Phase, PhaseEvent]>([
    ["idle", "succeed"],
    ["idle", "fail"],
    ["idle", "cancel"],
    ["running", "start"],
    ["done", "cancel"],
    ["error", "succeed"],
    ["cancelled", "fail"],
  ])("refuses %s --%s-->", (from, event) => {
    expect(can(from, event)).toBe(false);
    expect(() => transition(from, event)).toThrow(InvalidTransition);
  });
});
