"""Workers that come and go during a headless run on a real cluster (checks 3 and 4 of issue 12).

Scaling out: ``kubectl scale deploy/ingestload-worker --replicas 4`` mid-run makes the master
re-divide the rate over four workers (in proportion to the users Locust gives each), and the
offered rate stays on target — judged from the broker's record timestamps of what landed, counted
by ``readback.py``, not from the product's own numbers. A worker pod deleted mid-run: the verdict
is never a false PASS, and when it is not PASS its reason names that pod.
"""

from __future__ import annotations

import json

import pytest

from tests.kube.conftest import FACTS
from tests.kube.deploy import (
    WORKERS,
    Kube,
    apply,
    readback,
    reports,
    wait_for_log,
    wait_for_run,
    worker_pods,
)

pytestmark = pytest.mark.kube

RATE = 3000
#: Seconds after the new workers' first messages before the rate is judged (users move between
#: workers when Locust rebalances), and seconds cut at the end (the stop is not on a second).
SETTLE = 5
END_CUT = 2


def announced_rates(line: str) -> dict[str, float]:
    """Pod → msg/s over all paths, from ``rate divided among N workers: POD_ID api 750/s kafka 750/s; …``."""
    rates = {}
    for part in line.split("workers: ", 1)[1].split("; "):
        worker, *fields = part.split()
        pod = worker.rsplit("_", 1)[0]  # Locust's worker id is <hostname>_<hex>
        rates[pod] = sum(float(v.rstrip("/s").replace(",", "")) for v in fields[1::2])
    return rates


def test_scaling_workers_out_mid_run_re_divides_the_rate(kube: Kube, namespace: str) -> None:
    """2 → 4 workers mid-run: the master announces the new division, each of the four pods then
    sends the share announced for it and together they offer the target within 1% (both from the
    broker's timestamps of what landed), and the run still PASSes."""
    apply(kube, namespace, "local", workers=2)
    wait_for_log(kube, namespace, "| target ")
    first = set(worker_pods(kube, namespace))
    assert len(first) == 2, first
    wait_for_log(kube, namespace, "| target ", times=3)  # 10 s into the load
    kube.run("scale", "deploy", WORKERS, "-n", namespace, "--replicas", "4")
    outcome = wait_for_run(kube, namespace)
    assert (outcome.job_status, outcome.exit_code) == ("Succeeded", 0), outcome.log[-4000:]
    held = readback(kube, namespace, outcome.run_id)
    # Users moved between workers may be cut off mid-request: those messages are unknown, and the
    # ones that landed anyway are "recovered"; every acknowledged one is there.
    assert outcome.count("lost") == 0
    assert held["distinct"] == outcome.count("acked") + outcome.count("recovered")
    divisions = [line for line in outcome.log.splitlines() if "rate divided among 4 workers" in line]
    assert divisions, "the master never announced a division among 4 workers"
    announced = announced_rates(divisions[-1])

    ledger = json.loads(reports(kube, namespace, outcome.run_id)["ledger.json"])
    host_of = {p["producer_id"]: p["meta"]["host"] for p in ledger["producers"]}
    by_host: dict[str, dict[int, int]] = {}
    for producer, seconds in held["per_second_by_producer"].items():
        counts = by_host.setdefault(host_of[producer], {})
        for second, n in seconds.items():
            counts[int(second)] = counts.get(int(second), 0) + n
    new = set(by_host) - first
    assert len(new) == 2, f"hosts that sent: {sorted(by_host)}; first workers {sorted(first)}"

    per_second = {int(s): n for s, n in held["per_second"].items()}
    start = max(min(by_host[h]) for h in new) + SETTLE
    end = max(per_second) - END_CUT
    assert end - start >= 15, f"too little of the run after the re-division: {start}..{end}"
    window = range(start, end + 1)
    offered = sum(per_second.get(s, 0) for s in window) / len(window)
    assert abs(offered - RATE) <= 0.01 * RATE, f"{offered:,.0f} msg/s after the re-division, target {RATE:,}"
    # Each pod sends the share the master gave it (in proportion to its users): what the broker
    # got from it matches the last announced division, within 3% of the target.
    measured = {host: sum(counts.get(s, 0) for s in window) / len(window) for host, counts in by_host.items()}
    assert set(measured) == set(announced), (sorted(measured), sorted(announced))
    FACTS.append(
        f"scale 2 → 4: {offered:,.1f} msg/s offered over {len(window)} s after the re-division "
        f"(target {RATE:,}); per pod announced/measured: "
        + ", ".join(f"{announced[h]:,.0f}/{measured[h]:,.0f}" for h in sorted(measured))
    )
    for host, rate in measured.items():
        assert rate > 0.05 * RATE, f"{host} took no share after the re-division"
        assert abs(rate - announced[host]) <= 0.03 * RATE, (
            f"{host}: {rate:,.0f} msg/s, announced {announced[host]:,.0f}"
        )


def test_deleting_a_worker_pod_mid_run_is_never_a_false_pass(kube: Kube, namespace: str) -> None:
    """One of three worker pods deleted mid-run: the run goes on and ends with a verdict; it is
    PASS only if that pod's ledger was counted and every acknowledged message is in the broker,
    and otherwise INCONCLUSIVE (nothing was lost) with a reason that names the pod."""
    apply(kube, namespace, "local", workers=3)
    wait_for_log(kube, namespace, "| target ")
    wait_for_log(kube, namespace, "| target ", times=3)
    victim = worker_pods(kube, namespace)[0]
    kube.run("delete", "pod", victim, "-n", namespace, "--wait=false")
    outcome = wait_for_run(kube, namespace)
    held = readback(kube, namespace, outcome.run_id)
    files = reports(kube, namespace, outcome.run_id)
    verdict = json.loads(files["verdict.json"])
    ledger = json.loads(files["ledger.json"])
    hosts = {p["meta"]["host"] for p in ledger["producers"]}
    late = [int(s) for s in held["per_second"]]
    assert max(late) - min(late) >= 50, "the run did not go on after the deletion"

    FACTS.append(f"worker {victim} deleted mid-run: {verdict['status']} ({'; '.join(verdict['reasons'])})")
    if verdict["status"] == "PASS":
        assert outcome.exit_code == 0
        assert victim in hosts, "PASS without the deleted worker's ledger"
        assert verdict["acked"] + verdict["recovered"] == held["distinct"]  # unknowns that landed too
    else:
        assert (verdict["status"], outcome.exit_code) == ("INCONCLUSIVE", 4), outcome.log[-4000:]
        assert any(victim in reason for reason in verdict["reasons"]), verdict["reasons"]
        assert verdict["lost"] == 0  # nothing was lost: no invented loss either
