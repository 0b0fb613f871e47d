/** The life of one Execute call as a small state machine: idle → running → done/error/cancelled. */

export type Phase = "idle" | "running" | "done" | "error" | "cancelled";
export type PhaseEvent = "start" | "succeed" | "fail" | "cancel";

// Every finished phase may start the next run; only a running call can end.
const TRANSITIONS: Record<Phase, Partial<Record<PhaseEvent, Phase>>> = {
  idle: { start: "running" },
  running: { succeed: "done", fail: "error", cancel: "cancelled" },
  done: { start: "running" },
  error: { start: "running" },
  cancelled: { start: "running" },
};

export class InvalidTransition extends Error {
  constructor(
    readonly phase: Phase,
    readonly event: PhaseEvent,
  ) {
    super(`cannot ${event} while ${phase}`);
    this.name = "InvalidTransition";
  }
}

/** The phase after `event`; throws InvalidTransition so a UI bug shows up instead of hiding. */
export function transition(phase: Phase, event: PhaseEvent): Phase {
  const next = TRANSITIONS[phase][event];
  if (next === undefined) throw new InvalidTransition(phase, event);
  return next;
}

/** Whether `event` is allowed in `phase`. */
export function can(phase: Phase, event: PhaseEvent): boolean {
  return TRANSITIONS[phase][event] !== undefined;
}
