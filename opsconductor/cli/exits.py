"""Exit codes of every command: one meaning per number across the tool, and the codes each
command can end with (its `--help` and the README's table are made from this)."""

from __future__ import annotations

OK, FAILED, USAGE, INCONCLUSIVE, UNREACHABLE, NO_STACK, BUSY, INTERRUPTED = 0, 1, 2, 3, 4, 5, 75, 130

MEANINGS = {
    OK: "success",
    FAILED: "the command ran and what it checked or changed failed",
    USAGE: "usage error: a bad flag value, an unknown environment, a missing file (one line says which)",
    INCONCLUSIVE: "inconclusive: no traffic, so nothing was proven",
    UNREACHABLE: "something the command needs did not answer (Prometheus, Envoy's admin, the supervisor)",
    NO_STACK: "no stack is running from the state directory",
    BUSY: "busy: another change is in progress in the supervisor; nothing was changed",
    INTERRUPTED: "interrupted (Ctrl-C); one line says what state the mesh is in",
}

_CHANGE = {NO_STACK: "no stack is running", BUSY: "another change is in progress (or use --wait)",
           UNREACHABLE: "the supervisor did not answer", INTERRUPTED: "Ctrl-C: the supervisor finishes the change"}
_CHECK = {INTERRUPTED: "Ctrl-C: nothing was changed"}
# canary set|rollback|promote --kubernetes: kubectl in place of the supervisor.
_KUBECTL = {UNREACHABLE: "the supervisor did not answer, or (--kubernetes) kubectl is not installed"}

_STAT = {OK: "shown (with --watch: until Ctrl-C)", USAGE: "bad flag value",
         UNREACHABLE: "nothing could be read: neither the gateway nor a source of figures answered",
         NO_STACK: "no stack is running (and no --admin given)", **_CHECK}

EXIT_CODES: dict[str, dict[int, str]] = {
    "automation": {OK: "stopped by SIGTERM or SIGINT after its calls finished", FAILED: "could not start (port taken)",
                   USAGE: "bad configuration"},
    "pipeline": {OK: "stopped by SIGTERM or SIGINT after its calls finished", FAILED: "could not start (port taken)",
                 USAGE: "bad configuration"},
    "up": {OK: "with --detach: the stack is up in the background",
           FAILED: "a port is taken, a component did not start, or the gateway could not be kept up",
           USAGE: "bad flag value", 129: "stopped by SIGHUP (the terminal was closed)",
           INTERRUPTED: "stopped by Ctrl-C (SIGINT), nothing left running", 143: "stopped by SIGTERM (`down`)"},
    "status": {OK: "every component runs and is ready", FAILED: "a component is not ready, restarting or "
               "crash-looping, or the weights cannot be read", USAGE: "bad flag value or unknown component",
               NO_STACK: "no stack is running", **_CHECK},
    "down": {OK: "stopped (or nothing was running)", USAGE: "bad flag value", **_CHECK},
    "stat": _STAT,
    "canary status": _STAT,
    "canary set": {OK: "the new split is in force on every gateway", FAILED: "the supervisor could not apply it "
                   "(nothing changed), or kubectl failed (its message says why)",
                   USAGE: "not a whole number from 0 to 100", **_CHANGE, **_KUBECTL},
    "canary rollback": {OK: "every call goes to the stable pool", FAILED: "the supervisor (or kubectl) could not "
                        "apply it", USAGE: "bad flag value", **_CHANGE, **_KUBECTL},
    "canary promote": {OK: "stable runs the canary's version", FAILED: "a replica did not start on the new "
                       "version: the mesh was put back as it was; with --kubernetes, a kubectl step failed and the "
                       "canary keeps 100 %", USAGE: "bad flag value", **_CHANGE, **_KUBECTL},
    "canary bypass": {OK: "the canary pool runs with the new setting", FAILED: "a replica did not start: the "
                      "pool was put back as it was", USAGE: "bad flag value", **_CHANGE},
    "canary rollout": {OK: "promoted (start --watch); handed over (--no-watch); shown, paused, resumed or "
                       "aborted (the other actions)", FAILED: "a step failed or the rollout was aborted: rolled "
                       "back to stable; pause/resume/abort: no rollout is running",
                       USAGE: "bad flag value, or an interval shorter than four scrapes (refused before anything "
                       "changed)", UNREACHABLE: "Prometheus or the supervisor did not answer",
                       NO_STACK: "no stack is running", BUSY: "another change is in progress",
                       INTERRUPTED: "Ctrl-C: following stopped; the rollout goes on in the supervisor"},
    "trace": {OK: "shown", FAILED: "the store has no such trace", USAGE: "bad flag value, or neither a trace id "
              "nor --slowest", UNREACHABLE: "the trace store did not answer",
              NO_STACK: "no stack is running (and no --traces-url given), or it keeps no trace store", **_CHECK},
    "certs show": {OK: "shown", FAILED: "no workload certificates in the state directory", USAGE: "bad flag value",
                   **_CHECK},
    "certs rotate": {OK: "every certificate renewed; the processes pick them up without a restart",
                     FAILED: "the stack runs without certificates, or renewing failed", USAGE: "bad flag value",
                     **_CHANGE},
    "smoke": {OK: "every check passed", FAILED: "a check failed (each FAIL line says what)",
              USAGE: "unknown environment or missing file", NO_STACK: "local: no stack is running", **_CHECK},
    "gate": {OK: "every interval met the SLOs", FAILED: "an SLO was violated", USAGE: "bad flag value or unknown "
             "environment", INCONCLUSIVE: "no traffic in some interval", UNREACHABLE: "Prometheus unreachable",
             NO_STACK: "local: no stack is running (and no --prometheus given)", **_CHECK},
    "frontend-check": {OK: "every check passed", FAILED: "a check failed", USAGE: "unknown environment, or it "
                       "serves no page", NO_STACK: "local: no stack is running", **_CHECK},
    "bench": {OK: "every reply was verified", FAILED: "some replies could not be verified", USAGE: "bad flag value",
              INTERRUPTED: "Ctrl-C: its own mesh was stopped"},
}


def epilog(command: str) -> str:
    """The "exit codes:" paragraph of a command's --help."""
    codes = EXIT_CODES[command]
    return "exit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in sorted(codes.items()))


def markdown_table() -> str:
    """The README's exit-code table (`make generate` writes it there)."""
    lines = ["| code | meaning |", "|---|---|"]
    lines += [f"| {code} | {text} |" for code, text in sorted(MEANINGS.items())]
    lines += ["", "| command | exit codes |", "|---|---|"]
    for command, codes in EXIT_CODES.items():
        cells = "; ".join(f"{code} {text}" for code, text in sorted(codes.items()))
        lines.append(f"| `opsconductor {command}` | {cells} |")
    return "\n".join(lines)
