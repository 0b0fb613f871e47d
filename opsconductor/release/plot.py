"""The rollout's report at a glance: one SVG per rollout, drawn from its record with matplotlib
(Agg, no display): canary against stable success rate and p99 over time, the canary's weight
as a step line, and each step's verdict where it ended."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, never a window
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"canary": "#d95f02", "stable": "#1b9e77", "gateway": "#e7298a", "weight": "#7570b3"}
LABELS = {"canary": "canary", "stable": "stable", "gateway": "canary's share at the gateway"}
VERDICT_COLOURS = {"pass": "#1b9e77", "fail": "#d62728", "aborted": "#d62728", "stopped": "#7f7f7f"}


def _points(record: dict) -> list[dict]:
    """Every sample and judged reading of the rollout, in time order."""
    points = []
    for step in record.get("history", []):
        points += step.get("samples") or []
        for pool, key in (("canary", "canary"), ("stable", "stable"), ("gateway", "edge")):
            reading = step.get(key)
            if reading and reading.get("at"):
                if key == "edge":  # the record keeps its parts; the ratio is worked out as the verdict did
                    attempts = reading["calls"] + reading["upstream_failures"]
                    bad = reading["failed_calls"] + reading["upstream_failures"] + max(
                        reading["calls"] - reading["served"], 0)
                    reading = {**reading, "error_ratio": min(bad / attempts, 1.0) if attempts > 0 else None}
                points.append({"at": reading["at"], "weight": step["weight"], pool: reading})
    return sorted(points, key=lambda point: point["at"])


def _series(points: list[dict], pool: str, field: str, scale: float, start: float) -> tuple[list, list]:
    xs, ys = [], []
    for point in points:
        value = (point.get(pool) or {}).get(field)
        if value is not None:
            xs.append(point["at"] - start)
            ys.append((1 - value) * 100 if field == "error_ratio" else value * scale)
    return xs, ys


def write_plot(record: dict, path: Path) -> Path:
    """Draws `record` (a rollout's, as rollout.record makes it) to `path` (.svg or .png)."""
    start = record.get("started_at") or 0.0
    points = _points(record)
    figure, (rate, latency, weight) = plt.subplots(3, 1, sharex=True, figsize=(9, 7.5),
                                                   gridspec_kw={"height_ratios": (3, 3, 2)})
    for pool, style in (("stable", "--"), ("gateway", ":"), ("canary", "-")):  # the canary drawn last, on top
        rate.plot(*_series(points, pool, "error_ratio", 100, start), linestyle=style, marker="o", markersize=3,
                  label=LABELS[pool], color=COLOURS[pool])
        latency.plot(*_series(points, pool, "p99_s", 1000, start), linestyle=style, marker="o", markersize=3,
                     label=LABELS[pool], color=COLOURS[pool])
    rate.set_ylabel("success rate (%)")
    rate.set_ylim(top=100.5)
    latency.set_ylabel("p99 (ms)")
    latency.set_ylim(bottom=0)
    # The weight as it was set: each step from its start to its end.
    times, weights = [0.0], [0]
    for step in record.get("history", []):
        if step.get("started_at"):
            times.append(step["started_at"] - start)
            weights.append(step["weight"])
        if step.get("ended_at"):
            verdict = step.get("verdict", "")
            for axis in (rate, latency, weight):
                axis.axvline(step["ended_at"] - start, color=VERDICT_COLOURS.get(verdict, "#999999"),
                             linestyle="--", linewidth=0.8)
            what = f"mirror {step['mirror']} %" if step.get("mirror") else f"{step['weight']} %"  # weight 0
            weight.annotate(f"{what} {verdict}", (step["ended_at"] - start, step["weight"]),
                            textcoords="offset points", xytext=(-4, 4), ha="right", fontsize=8)
    end = (record.get("ended_at") or record.get("updated_at") or start) - start
    final = 0 if record.get("outcome") in ("rolled back", "aborted") else weights[-1]
    times.append(max(end, times[-1]))
    weights.append(final if record.get("outcome") != "promoted" else 100)
    weight.step(times, weights, where="post", color=COLOURS["weight"], label="canary weight")
    weight.set_ylabel("canary weight (%)")
    weight.set_ylim(-5, 110)
    weight.set_xlabel("seconds since the rollout started")
    for axis in (rate, latency, weight):
        axis.grid(alpha=0.3)
        axis.legend(loc="best", fontsize=8, framealpha=0.8)
    outcome = record.get("outcome") or "running"
    figure.suptitle(f"canary rollout {record.get('id', '')}: {outcome} (steps "
                    f"{', '.join(f'{s} %' for s in record.get('steps', []))}, {record.get('interval_s', 0):g} s each, "
                    f"window {record.get('window', '?')})", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
