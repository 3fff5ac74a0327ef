"""bench.cluster's report: each burst's figures in its own table, and the verdict."""

from __future__ import annotations

from dataclasses import replace

from bench.cluster import LineBurst, ReplicaRun, Sizes, SmsCounts, report
from bench.line import LineCounts
from bench.stats import Timings


def burst(fast: int, slow: int, slow_s: float, duplicate_calls: int = 0) -> LineBurst:
    """A burst whose edge answered ``fast`` deliveries in 10 ms and ``slow`` in ``slow_s``."""
    edge = [0.010] * fast + [slow_s] * slow
    counts = LineCounts(
        deliveries=len(edge),
        acknowledged=len(edge),
        ack_s=[seconds + 0.002 for seconds in edge],
        within_limit=len(edge),
        replies_expected=len(edge),
        replies_received=len(edge),
        missing=0,
        duplicate_calls=duplicate_calls,
        redeliveries=0,
        redeliveries_answered=0,
        pushes=0,
        mismatched=0,
        reply_s=[1.5] * len(edge),
    )
    return LineBurst(counts, wall_s=4.0, edge_ack_s=edge, intake_ack_s=[s / 2 for s in edge])


def replica_run(
    replicas: int, line: LineBurst, again: LineBurst, bare_s: float = 0.024
) -> ReplicaRun:
    sms = SmsCounts(
        verifications=20,
        errors=0,
        trigger_s=[0.3] * 20,
        delivered_s=[0.06] * 20,
        lines=20,
        codes_twice=0,
        rows={"sent": 20},
        by_actions=20,
        by_worker=0,
    )
    turns = Timings(seconds=[0.5] * 400, wall_s=20.0 / replicas)
    cpu = {"replica 1: rasa server": 30.0, "benchmark client (this process)": 5.0}
    bare = [bare_s] * 195
    return ReplicaRun(replicas, turns, 0, 0, cpu, 35.0, line, again, bare, sms)


def table_row(text: str, section: str, label: str) -> list[str]:
    """The cells after ``label`` in the first table under the heading ``section``."""
    lines = text.split(f"### {section}\n", 1)[1].split("\n### ", 1)[0].splitlines()
    found = next(line for line in lines if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in found.strip("|").split("|")][1:]


def test_each_burst_is_reported_in_its_own_table_for_each_cluster_size():
    one = replica_run(1, burst(190, 10, 0.080), burst(200, 0, 0.0))
    two = replica_run(2, burst(150, 50, 0.120), burst(199, 1, 0.051))
    text = report([one, two], Sizes(), ["- Date: (test)"])

    first = "LINE burst"
    assert table_row(text, first, "acknowledged within 50 ms at the edge") == [
        "190 of 200",
        "150 of 200",
    ]
    assert table_row(
        text, first, "acknowledgement at the edge (nginx $request_time) p50 / p95 / max ms"
    )[1].endswith(" / 120.0")
    again = "The burst again, on the connections to the intake nginx kept"
    assert table_row(text, again, "acknowledged within 50 ms at the edge") == [
        "200 of 200",
        "199 of 200",
    ]
    assert table_row(
        text, again, "of which at the intake (nginx $upstream_response_time) p50 / p95 / max ms"
    ) == [
        "5.0 / 5.0 / 5.0",
        "5.0 / 5.0 / 25.5",
    ]
    # The client's p95 (the edge's + 2 ms here) against the bare server's 24 ms.
    assert (
        table_row(text, again, "… at the client, p95 over the bare server's (baseline below)")[0]
        == "0.50×"
    )
    assert "24.0 / 24.0 / 24.0 (1 replica; 195 answered)" in text
    # The intake's CPU per delivery: not read for these bursts, then 90 ms over 200.
    cpu = "the intake's CPU per delivery (all its processes) ms"
    assert table_row(text, first, cpu) == ["—", "—"]
    measured = replace(two, line=replace(two.line, intake_cpu_s=0.090))
    text = report([one, measured], Sizes(), [])
    assert table_row(text, first, cpu) == ["—", "0.45"]
    assert table_row(text, again, cpu) == ["—", "—"]
    assert one.ok and two.ok
    assert text.endswith("No error and no duplicate in any phase: yes")


def test_a_reply_called_twice_in_the_second_burst_fails_the_run():
    one = replica_run(1, burst(200, 0, 0.0), burst(200, 0, 0.0))
    two = replica_run(2, burst(200, 0, 0.0), burst(200, 0, 0.0, duplicate_calls=1))

    assert one.ok and not two.ok
    text = report([one, two], Sizes(), [])
    again = "The burst again, on the connections to the intake nginx kept"
    assert table_row(text, again, "duplicate reply calls (same replyToken)") == ["0", "1"]
    assert text.endswith("No error and no duplicate in any phase: **NO** (see the counts above)")
    # Nothing else in the run decides it.
    assert replace(two, again=one.again).ok
