"""Benchmark: labelled 256x256 synthetic faces per second, with every worker the machine has."""

from __future__ import annotations

import os
import time

from data_tools.synth import SynthConfig, render_sample, synthesize


def benchmark(quick: bool) -> list[str]:
    """Labelled 256x256 face images per second (rendered, degraded, JPEG-encoded, in memory).

    Prints and returns the wall-clock rate with one process and with one process per
    core, plus the CPU time per image of the single process and the load average, so a
    figure taken on a busy machine can be told from the renderer's own speed.
    """
    n = 96 if quick else 2000
    config = SynthConfig()
    render_sample(config, 0, 0)  # builds the mesh and textures this config renders with, outside the timing
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    synthesize(config, n, seed=0, workers=1)
    cpu_ms = (time.process_time() - cpu_start) / n * 1e3
    rows = [(1, n / (time.perf_counter() - wall_start))]
    cores = os.cpu_count() or 1
    if cores > 1:
        wall_start = time.perf_counter()
        synthesize(config, n, seed=0, workers=cores)
        rows.append((cores, n / (time.perf_counter() - wall_start)))
    load = os.getloadavg()[0]
    lines = ["| workers | images | images/s (wall) |", "|---|---|---|"]
    for workers, rate in rows:
        print(f"renderer: {workers} worker(s): {rate:.0f} images/s")
        lines.append(f"| {workers} | {n} | {rate:.0f} |")
    ceiling = cores * 1e3 / cpu_ms
    print(f"renderer: {cpu_ms:.1f} ms CPU per image in one process -> {ceiling:.0f} images/s on {cores} idle cores; "
          f"load average {load:.1f}")
    lines += ["", f"CPU time per image (one process): {cpu_ms:.1f} ms, i.e. {ceiling:.0f} images/s on {cores} idle cores. "
                  f"Load average during the run: {load:.1f} (other work on the machine lowers the wall-clock rates).",
              f"Target: >= 200 images/s on 2 cores (DESIGN.md §7). JPEG quality {config.quality}, "
              "procedural backgrounds, occluders and all degradations on."]
    return lines
