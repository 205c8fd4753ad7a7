"""Draws the figures bench/run saved (bench/results/*.json) as PNG pictures a
person would rather look at than key=value lines:

    python3 bench/plot.py bench/results/saga-sqlite-20261130T061500Z.json [MORE.json ...]
        [--out DIR]

- saga: rentals completed per second over each run's time (flat means steady,
  a dip is a stall), and the distribution of kiosk-observed decision latency
  (the share of decisions answered within t, as fast as the hub answers and
  paced), one line per run;
- ingest: events acknowledged per second over each run's time;
- every bench: its headline figures per run beside the same run's raw broker
  baseline, and the medians.
Several files of one bench (say, sqlite and postgresql) are drawn together.
Needs Debian's python3-matplotlib (bench/run installs it)."""
import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def label(doc, i):
    """store, the file's time (HH:MM:SS UTC) and the run."""
    t = doc.get("utc", "")
    when = f" {t[9:11]}:{t[11:13]}:{t[13:15]}" if len(t) >= 15 else ""
    return f"{doc['store']}{when} run {i + 1}"


def plot_series(docs, key, title, ylabel, out):
    fig, ax = plt.subplots(figsize=(8, 4))
    drawn = 0
    for doc in docs:
        for i, run in enumerate(doc["runs"]):
            pts = run.get(key) or []
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=label(doc, i))
                drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_title(title)
    ax.set_xlabel("second of the run")
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_latency(docs, out):
    fig, ax = plt.subplots(figsize=(8, 4))
    drawn = 0
    for key, style in (("series.decisions_le_ms", "-"), ("series.paced_decisions_le_ms", "--")):
        for doc in docs:
            for i, run in enumerate(doc["runs"]):
                pts = run.get(key) or []
                total = pts[-1][1] if pts else 0
                if total:
                    what = "as fast as possible" if "paced" not in key else f"paced {doc['args'].get('rate')}/s"
                    ax.plot([p[0] for p in pts], [100 * p[1] / total for p in pts], style,
                            marker=".", label=f"{label(doc, i)}, {what}")
                    drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xscale("log")
    ax.set_title("Kiosk-observed decision latency")
    ax.set_xlabel("answered within (ms, log scale)")
    ax.set_ylabel("% of decisions")
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_headline(docs, out):
    bench = docs[0]["bench"]
    head = {"saga": "saga_completed_rentals_per_s", "ingest": "ingest_events_per_s"}.get(bench)
    fig, ax = plt.subplots(figsize=(8, 4))
    names, values, bases = [], [], []
    for doc in docs:
        for i, run in enumerate(doc["runs"]):
            names.append(label(doc, i))
            values.append(run.get(head, 0) if head else 0)
            bases.append(run.get("baseline_qos1_msgs_per_s", 0))
    xs = range(len(names))
    if head:
        ax.bar([x - 0.2 for x in xs], values, width=0.4, label=head)
    ax.bar([x + 0.2 for x in xs], bases, width=0.4, label="raw broker QoS 1 msgs/s (same run)", alpha=0.6)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=20, fontsize=8)
    ax.set_title(f"{bench}: each run beside its own baseline (the machine is shared: compare ratios)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main():
    p = argparse.ArgumentParser(prog="bench/plot.py")
    p.add_argument("results", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=None, help="directory (default: beside the first file)")
    a = p.parse_args()
    docs = [json.loads(r.read_text()) for r in a.results]
    if len({d["bench"] for d in docs}) != 1:
        sys.exit("bench/plot.py: give files of one bench at a time")
    out = a.out or a.results[0].parent
    out.mkdir(parents=True, exist_ok=True)
    stem = a.results[0].stem if len(docs) == 1 else f"{docs[0]['bench']}-compared"
    made = [plot_headline(docs, out / f"{stem}-headline.png")]
    if docs[0]["bench"] == "saga":
        made.append(plot_series(docs, "series.completed_per_s", "Rentals completed per second",
                                "rentals/s", out / f"{stem}-throughput.png"))
        made.append(plot_latency(docs, out / f"{stem}-latency.png"))
    elif docs[0]["bench"] == "ingest":
        made.append(plot_series(docs, "series.events_per_s", "Events acknowledged per second",
                                "events/s", out / f"{stem}-throughput.png"))
    for m in made:
        if m:
            print(m)


if __name__ == "__main__":
    main()
