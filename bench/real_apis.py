"""The verdict against ingest APIs of other people's design, as issue 17 tried them: at --rate msg/s for
--time, with 1 % of messages dropped (every 100th) and 0.5 % duplicated (every 201st) by the API, one
whole headless run per API.
Prints, per API, its own account (what it dropped and duplicated) beside the verdict.

The APIs are the tests' (tests/e2e/apis/): a Python server that forwards our bytes, the Node.js
(express + kafkajs) API that re-serialises, enriches, wraps, writes every type to one topic or a whole
batch as one record, and seed 001's Flask endpoint (form posts; at --seed001-rate, as its
KafkaProducer-per-request design allows).

Run against an older checkout (``PYTHONPATH=old/src``) it shows what that version made of them:
options it does not have are left out (``--old``).

    python bench/real_apis.py [--rate 1000] [--time 20s] [--old]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ingestload.kafka.broker import EmbeddedBroker
from ingestload.testing import free_port, unique_prefix

ROOT = Path(__file__).resolve().parents[1]
APIS = ROOT / "tests" / "e2e" / "apis"
SEED001 = APIS / "seed001"


@contextlib.contextmanager
def kafka(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
    else:
        with EmbeddedBroker() as broker:
            yield broker.bootstrap


class Row:
    """One API: how to start it, and the options ingestload needs for it (new ones marked)."""

    def __init__(self, name: str, start: list[str], options: list[str], new: list[str], **env: str) -> None:
        self.name, self.start, self.options, self.new, self.env = name, start, options, new, env


def rows(bootstrap: str, prefix: str, port: int, truth: Path, drop: int, dup: int) -> list[Row]:
    node = [shutil.which("node") or "node", str(APIS / "node_api.js"), "--port", str(port)]
    node += ["--bootstrap", bootstrap, "--prefix", prefix, "--truth", str(truth)]
    node += ["--drop-every", str(drop), "--duplicate-every", str(dup)]
    single = ["--api-path", "/ingest/{msgType}"]
    python = [sys.executable, str(ROOT / "tests" / "e2e" / "thirdparty_api.py"), "--port", str(port)]
    python += ["--bootstrap", bootstrap, "--prefix", prefix, "--truth", str(truth)]
    python += ["--drop-every", str(drop), "--duplicate-every", str(dup)]
    return [
        Row("forwards the bytes (Python)", python, single, []),
        Row("parses and re-serialises (Node.js)", [*node, "--mode", "forward"], single, []),
        Row("adds receivedAt, source (Node.js)", [*node, "--mode", "enrich"], single, []),
        Row('wraps {"meta", "data"} (Node.js)', [*node, "--mode", "wrap"], single, []),
        Row(
            "every type to one topic (Node.js)",
            [*node, "--mode", "forward", "--topic", prefix + "all"],
            [*single, "--api-topic-map", f"*={prefix}all"],
            [],
        ),
        Row(
            "20 per record {count, records} (Node.js)",
            [*node, "--mode", "batch"],
            ["--api-batch-size", "20", "--api-batch-path", "/batch/{msgType}"],
            [],
        ),
        Row(
            "seed 001: form, json.dumps(form), strict (Flask)",
            [sys.executable, str(SEED001 / "myflask.py")],
            ["--catalogue", str(SEED001 / "catalogue.yaml"), "--api-path", "/{msgType}"],
            ["--api-body", "form", "--envelope-in", "test01"],
            SEED001_KAFKA=bootstrap,
            SEED001_PORT=str(port),
            SEED001_TOPIC_PREFIX=prefix,
            SEED001_ENDPOINTS="financial_pro,social_pro",
            SEED001_TRUTH=str(truth),
            SEED001_DROP_EVERY=str(drop),
            SEED001_DUPLICATE_EVERY=str(dup),
        ),
    ]


def run_row(row: Row, args: argparse.Namespace, bootstrap: str, prefix: str, port: int, folder: Path) -> dict:
    truth = folder / "truth.json"
    api = subprocess.Popen(
        row.start, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT, env={**os.environ, **row.env}
    )
    assert api.stdout is not None
    assert api.stdout.readline().strip() == b"ready", row.name
    seed001 = bool(row.env)
    verdict_file = folder / "verdict.json"
    command = [
        sys.executable, "-m", "ingestload.cli", "run", "-f", str(ROOT / "locustfiles" / "api.py"),
        "--api-url", f"http://127.0.0.1:{port}", "--kafka-bootstrap", bootstrap, "--topic-prefix", prefix,
        "--rate", str(args.seed001_rate if seed001 else args.rate), "-t", args.time, "-u", str(args.users),
        "--verdict-file", str(verdict_file), *row.options, *([] if args.old else row.new),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    api.send_signal(signal.SIGTERM)
    api.wait(60)
    account = json.loads(truth.read_text())
    if not verdict_file.exists():
        return {"account": account, "error": done.stdout[-2000:] + done.stderr[-2000:]}
    return {"account": account, "verdict": json.loads(verdict_file.read_text())}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seed001-rate", type=int, default=80, help="seed 001's API: a producer per request")
    parser.add_argument("--time", default="20s")
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--old", action="store_true", help="an older checkout: leave the new options out")
    parser.add_argument("--only", default=None, help="only the rows whose name contains this")
    parser.add_argument("--kafka-bootstrap", default=None)
    args = parser.parse_args()
    results = []
    with kafka(args.kafka_bootstrap) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        for i, row in enumerate(rows(bootstrap, "P", 0, Path(tmp), 100, 201)):
            if args.only and args.only not in row.name:
                continue
            prefix, port, folder = unique_prefix("rapi"), free_port(), Path(tmp) / str(i)
            folder.mkdir()
            row = rows(bootstrap, prefix, port, folder / "truth.json", 100, 201)[i]
            print(f"{row.name}…", flush=True)
            result = run_row(row, args, bootstrap, prefix, port, folder)
            results.append((row.name, result))
            v = result.get("verdict")
            print(f"  {v['status'] if v else result['error']}", flush=True)
    print(f"\n{'what the API does':<50} {'its account':>16}  verdict")
    for name, result in results:
        a = result["account"]
        mine = f"lost {len(a['lost'])} dup {len(a['duplicated'])}"
        v = result.get("verdict")
        if v is None:
            print(f"{name:<50} {mine:>16}  no verdict")
            continue
        text = (
            f"{v['status']} acked={v['acked']:,} seen={v['seen']:,} lost={v['lost']} dup={v['duplicated']} "
            f"corrupted={v['corrupted']} misrouted={v['misrouted']}"
        )
        if v.get("enriched"):
            text += f" enriched={v['enriched']:,} ({', '.join(sorted(v['enriched_members']))})"
        exact = v["lost"] == len(a["lost"]) and v["duplicated"] == len(a["duplicated"]) and not v["corrupted"]
        print(f"{name:<50} {mine:>16}  {text}  [{'exact' if exact else 'NOT exact'}]")


if __name__ == "__main__":
    main()
