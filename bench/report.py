#!/usr/bin/env python3
"""Turn one bench run (modelgate and LiteLLM results from ../shared/bench) into the table in docs/performance.md.

    report.py RESULTS_DIR [--out docs/performance.md]

RESULTS_DIR holds the harness's `<stamp>-<label>/results.json` folders of one run. The generated part of the
document sits between `<!-- bench:begin -->` and `<!-- bench:end -->`; everything around it is kept.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
TARGETS = {
    "a_c1_d0": "added latency ≤ 1.5 ms p50, ≤ 5 ms p99",
    "b_c32_d0": "≥ 10× LiteLLM rps",
    "c_c200_d500": "≥ 90 % of direct rps",
    "d_stream_c32_d0": "≥ 10× LiteLLM rps",
    "f_stream_c200_d500": "≥ 90 % of direct rps",
    "g": "0 errors, ≥ 90 % of direct rps",
}


def load(directory: Path) -> dict[str, dict]:
    runs = {}
    for path in sorted(directory.glob("*/results.json")):
        data = json.loads(path.read_text())
        label = data["meta"]["label"]
        kind = "modelgate" if label.startswith("modelgate") else "litellm" if label.startswith("litellm") else label
        runs[kind] = data
    return runs


def errors(side: dict) -> int:
    return sum(side["errors"].values())


def verdict(name: str, direct: dict, mg: dict, peer: dict | None) -> str:
    if name.startswith("a_"):
        p50 = (mg["lat_us"]["p50"] - direct["lat_us"]["p50"]) / 1000
        p99 = (mg["lat_us"]["p99"] - direct["lat_us"]["p99"]) / 1000
        ok = p50 <= 1.5 and p99 <= 5
        return f"{'met' if ok else 'missed'}: +{p50:.2f} ms p50, +{p99:.2f} ms p99"
    if name.startswith(("b_", "d_")):
        if not peer or not peer["ok_rps"]:
            return "no LiteLLM figure"
        ratio = mg["ok_rps"] / peer["ok_rps"]
        return f"{'met' if ratio >= 10 else 'missed'}: {ratio:.1f}× LiteLLM"
    if name.startswith(("c_", "f_", "g")):
        share = mg["ok_rps"] / direct["ok_rps"] if direct["ok_rps"] else 0
        ok = share >= 0.9 and (not name.startswith("g") or errors(mg) == 0)
        return f"{'met' if ok else 'missed'}: {share:.0%} of direct, {errors(mg)} errors"
    return ""


def row(side: dict | None) -> list[str]:
    if side is None:
        return ["–"] * 5
    lat = side["lat_us"]
    return [
        f"{side['ok_rps']:.0f}",
        f"{lat['p50'] / 1000:.2f}",
        f"{lat['p99'] / 1000:.2f}",
        str(errors(side)),
        f"{side['cpu']['gateway_cores']:.2f} / {side['cpu']['gateway_peak_rss_mb']:.0f}",
    ]


def render(runs: dict[str, dict]) -> str:
    mg = runs["modelgate"]
    peer = runs.get("litellm")
    peer_results = {r["scenario"]: r for r in peer["results"]} if peer else {}
    lines = [
        BEGIN,
        f"Run of {mg['meta']['started']} on {mg['meta']['host']} ({mg['meta']['cores']} cores), "
        f"{mg['meta']['duration']} s per run after {mg['meta']['warmup']} s of warm-up, wrk with "
        f"{mg['meta']['threads']} thread. Reproduce: `make bench`.",
        "",
        f"- modelgate: {mg['meta']['gateway_note']}",
        f"- LiteLLM: {peer['meta']['gateway_note']}" if peer else "- LiteLLM: not run (SKIP_PEER=1)",
        "- direct: the fake upstream itself, measured in the same run (each target has its own direct row).",
        "",
        "Latencies in ms; rps counts successful responses only; cores / MB = the gateway's CPU (cores busy) and "
        "peak RSS of all its processes during the run.",
        "",
        "| scenario | direct rps | direct p50 | direct p99 | modelgate rps | p50 | p99 | errors | cores / MB "
        "| LiteLLM rps | p50 | p99 | errors | cores / MB | target | result |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for result in mg["results"]:
        name = result["scenario"]
        direct, gateway = result["direct"], result["gateway"]
        other = peer_results.get(name, {}).get("gateway")
        target_key = "g" if name.startswith("g") else name
        cells = [
            f"{name} ({result['desc']})"
            if result["desc"] != "custom"
            else f"{name} (stream, {result['delay_ms']:.0f} ms, c={result['concurrency']})",
            f"{direct['ok_rps']:.0f}",
            f"{direct['lat_us']['p50'] / 1000:.2f}",
            f"{direct['lat_us']['p99'] / 1000:.2f}",
            *row(gateway),
            *row(other),
            TARGETS.get(target_key, ""),
            verdict(name, direct, gateway, other),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "performance.md")
    args = parser.parse_args()
    table = render(load(args.results))
    text = args.out.read_text() if args.out.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + table + tail
    else:
        text += "\n" + table + "\n"
    args.out.write_text(text)
    print(table)


if __name__ == "__main__":
    main()
