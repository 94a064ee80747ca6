"""Rate accuracy, side by side in one run, on the same broker, read back from broker timestamps:

  (a) ingestload: ``--rate-profile`` (RampingRateShape + the open-model pacer), one process;
  (b) Locust's ``constant_throughput``: users × per-user task rate, the user count following
      the profile every second (bench/locustfiles/rate_anchors.py);
  (c) locust-plugins' ``constant_total_ips``: a fixed pool sharing a process-wide target.

Every side sends one stream of mock controller messages through the same producer client;
only the pacing differs. Two profiles per side:

  hold  2,775 msg/s (seed 000's band) — share of 1-second windows inside 2,760–2,790 after a
        5 s warm-up (target ≥ 99%), and total count error (target ≤ 0.1%);
  ramp  500 → 20,000 msg/s over 60 s — error of every 5-second window against the
        profile's integral (target ≤ 1%), and total count error (target ≤ 0.1%).

Windows are counted from the broker's record timestamps (CreateTime: when the producer
accepted each message), aligned on the run's first message.

    python bench/rate_accuracy.py [--hold 30] [--ramp 60] [--kafka-bootstrap HOST:PORT]
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ingestload.kafka.admin import ensure_topics
from ingestload.messages.catalogue import Catalogue
from ingestload.rate.profile import RateProfile
from ingestload.testing import (
    BOOTSTRAP_ENV,
    counts_per_window,
    kafka_bootstrap,
    locust_command,
    run_timestamps,
    unique_prefix,
)

ROOT = Path(__file__).resolve().parents[1]
BAND = (2760, 2790)
HOLD_RATE = 2775
WARM_UP = 5.0


@dataclass
class Result:
    """What one side achieved on one profile."""

    side: str
    profile: str
    sent: int
    target: float
    windows: list[int]
    expected: list[float]

    @property
    def total_error(self) -> float:
        return (self.sent - self.target) / self.target

    def in_band(self) -> tuple[int, int]:
        return sum(BAND[0] <= c <= BAND[1] for c in self.windows), len(self.windows)

    def window_errors(self) -> list[float]:
        return [(c - e) / e for c, e in zip(self.windows, self.expected, strict=True)]


class RateAccuracyBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results: list[Result] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="rate-bench-"))
        self.hold = self.profile("hold", f"{{kind: hold, rate: {HOLD_RATE}, duration: {args.hold:g}s}}")
        self.ramp = self.profile("ramp", f"{{kind: ramp, from: 500, to: 20000, duration: {args.ramp:g}s}}")

    def profile(self, name: str, stage: str) -> tuple[Path, RateProfile]:
        path = self.tmp / f"{name}.yaml"
        path.write_text(f"name: {name}\nstages:\n  - {stage}\n")
        return path, RateProfile.load(path)

    def run_side(self, side: str, bootstrap: str, name: str, profile: tuple[Path, RateProfile]) -> None:
        path, prof = profile
        prefix = unique_prefix("rate")
        topics = Catalogue.load().topics(prefix)
        ensure_topics({"bootstrap.servers": bootstrap}, topics, partitions=3)
        run_id = secrets.token_hex(8)
        common = [
            "--headless",
            "--only-summary",
            "--kafka-bootstrap",
            bootstrap,
            "--topic-prefix",
            prefix,
            "--run-id",
            run_id,
            "--status-interval",
            "0",
        ]
        env = dict(os.environ)
        if side == "ingestload":
            command = locust_command(ROOT / "locustfiles" / "kafka.py", *common, "--rate-profile", str(path))
        else:
            per_user = 100.0
            if prof.stages[0].kind == "hold":  # whole users: each runs rate/users exactly
                per_user = prof.peak / math.ceil(prof.peak / per_user)
            env.update(BENCH_PROFILE=str(path), BENCH_PACING=side, BENCH_PER_USER=str(per_user))
            command = locust_command(ROOT / "bench" / "locustfiles" / "rate_anchors.py", *common)
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
        if done.returncode != 0:
            sys.exit(f"{side} ({name}) failed:\n{done.stderr[-3000:]}")
        stamps = run_timestamps({"bootstrap.servers": bootstrap}, topics, run_id)
        if not stamps:
            sys.exit(f"{side} ({name}): nothing landed")
        origin = stamps[0]
        if name == "hold":
            n = int(prof.duration - WARM_UP)
            windows = counts_per_window(stamps, origin + WARM_UP * 1000, 1.0, n)
            expected = [float(HOLD_RATE)] * n
        else:
            n = int(prof.duration // 5)
            windows = counts_per_window(stamps, origin, 5.0, n)
            expected = [prof.count_until(5 * k + 5) - prof.count_until(5 * k) for k in range(n)]
        result = Result(side, name, len(stamps), prof.total, windows, expected)
        self.results.append(result)
        print(
            f"  {side:<20} {name}: {len(stamps):,} messages in {time.monotonic() - started:.0f}s "
            f"(total error {result.total_error:+.3%})",
            flush=True,
        )

    def main(self) -> None:
        print(
            f"Rate accuracy benchmark: hold {HOLD_RATE:,} msg/s for {self.args.hold:g}s, "
            f"ramp 500 → 20,000 msg/s over {self.args.ramp:g}s; load average {os.getloadavg()[0]:.2f} "
            f"on {os.cpu_count()} cores",
            flush=True,
        )
        given = {BOOTSTRAP_ENV: self.args.kafka_bootstrap} if self.args.kafka_bootstrap else {}
        with kafka_bootstrap(given) as bootstrap:
            for side in ("ingestload", "constant_throughput", "constant_total_ips"):
                for name, profile in (("hold", self.hold), ("ramp", self.ramp)):
                    self.run_side(side, bootstrap, name, profile)
        self.table()
        print(f"load average after: {os.getloadavg()[0]:.2f}")

    def table(self) -> None:
        labels = {
            "ingestload": "ingestload --rate-profile",
            "constant_throughput": "Locust constant_throughput",
            "constant_total_ips": "locust-plugins constant_total_ips",
        }
        by = {(r.side, r.profile): r for r in self.results}
        ours = by[("ingestload", "ramp")]
        print()
        header = (
            f"{'side':<34} {'hold: 1s windows in band':>25} {'hold msg/s':>11} {'hold total err':>15} "
            f"{'ramp: max 5s err':>17} {'ramp: mean |5s err|':>20} {'ramp total err':>15} "
            f"{'ramp err vs ours':>17}"
        )
        print(header)
        for side, label in labels.items():
            hold, ramp = by[(side, "hold")], by[(side, "ramp")]
            inside, n = hold.in_band()
            errors = ramp.window_errors()
            worst = max(errors, key=abs)
            mean_abs = sum(abs(e) for e in errors) / len(errors)
            ours_mean = sum(abs(e) for e in ours.window_errors()) / len(errors)
            print(
                f"{label:<34} {inside / n:>16.1%} ({inside:>2}/{n:>2}) "
                f"{sum(hold.windows) / n:>11,.0f} {hold.total_error:>+15.3%} {worst:>+17.2%} "
                f"{mean_abs:>20.2%} {ramp.total_error:>+15.3%} {mean_abs / max(ours_mean, 1e-9):>16.0f}×"
            )
        targets = ("≥ 99%", f"{HOLD_RATE:,}", "≤ 0.1%", "≤ 1%", "", "≤ 0.1%")
        print(
            f"{'targets':<34} "
            + " ".join(f"{t:>{w}}" for t, w in zip(targets, (25, 11, 15, 17, 20, 15), strict=True))
        )
        print("\nramp, per 5-second window (sent vs the profile's integral):")
        print(f"{'window':>8} {'target':>9} " + " ".join(f"{labels[s].split()[-1]:>20}" for s in labels))
        for k, expected in enumerate(ours.expected):
            cells = " ".join(
                f"{by[(s, 'ramp')].windows[k]:>11,} ({by[(s, 'ramp')].window_errors()[k]:>+6.2%})"
                for s in labels
            )
            print(f"{5 * k:>3}–{5 * k + 5:<3}s {expected:>9,.0f} {cells}")
        ok = [
            (
                "hold windows in band ≥ 99%",
                by[("ingestload", "hold")].in_band()[0] / len(by[("ingestload", "hold")].windows) >= 0.99,
            ),
            ("ramp 5-s windows within 1%", max(abs(e) for e in ours.window_errors()) <= 0.01),
            (
                "total count within 0.1%",
                max(abs(by[("ingestload", p)].total_error) for p in ("hold", "ramp")) <= 0.001,
            ),
        ]
        print(
            "\ningestload targets: "
            + ", ".join(f"{name} [{'met' if met else 'NOT met'}]" for name, met in ok)
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--hold", type=float, default=30.0, help="seconds of the 2,775 msg/s hold (default 30)"
    )
    parser.add_argument(
        "--ramp", type=float, default=60.0, help="seconds of the 500 → 20,000 ramp (default 60)"
    )
    parser.add_argument(
        "--kafka-bootstrap", default=None, help="use this Kafka instead of the embedded broker"
    )
    return parser.parse_args()


if __name__ == "__main__":
    RateAccuracyBench(parse_args()).main()
