"""bench.line_edge's parts that need no server: listeners, the report."""

from __future__ import annotations

from pathlib import Path

from bench.line_edge import Burst, Round, listeners, report

# /proc/net/tcp as the kernel writes it: port 18490 (0x483A) listened on twice (two
# SO_REUSEPORT processes), once connected; 5006 (0x138E) on another address.
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid
   0: 0100007F:483A 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0
   1: 0100007F:483A 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0
   2: 0100007F:483A 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0
   3: 00000000:138E 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0
   4: 0100007F:D431 0100007F:483A 01 00000000:00000000 00:00000000 00000000     0
"""


def test_listeners_counts_each_listening_socket_on_the_port_only(tmp_path: Path):
    table = tmp_path / "tcp"
    table.write_text(TCP)
    assert listeners(18490, table) == 2
    assert listeners(5006, table) == 1
    # 0xD431 is a client's port in an established connection, not a listener.
    assert listeners(0xD431, table) == 0


def one_burst(edge_ms: float, intake_cpu_s: float) -> Burst:
    return Burst(
        edge_s=[edge_ms / 1000] * 200,
        statuses_ok=200,
        deliveries=200,
        intake_cpu_s=intake_cpu_s,
        nginx_cpu_s=0.010,
        client_cpu_s=0.040,
    )


def test_the_report_counts_bursts_within_the_target_and_cpu_per_delivery():
    rounds = [
        Round(cold=one_burst(60, 0.080), kept=one_burst(30, 0.040)),
        Round(cold=one_burst(45, 0.060), kept=one_burst(20, 0.040)),
    ]
    text = report(rounds, 2, ["- Date: (test)"])
    assert "| 1 | 60 / 60 | 0 of 200 | 0.40 / 0.05 / 0.20 | 30 / 30 | 200 of 200 |" in text
    assert "- cold bursts: edge p95 45–60 ms, within 50 ms in 1 of 2 bursts" in text
    assert "- kept connections: edge p95 20–30 ms, within 50 ms in 2 of 2 bursts" in text
    assert "the intake's CPU per delivery, median 0.35 ms" in text
