"""Benchmark: labelled 256x256 synthetic faces per second, with every worker the machine has."""

from __future__ import annotations

import os
import statistics
import time

import cv2

from data_tools.synth import SynthConfig, render_sample, synthesize

REPEATS = 3  # full runs per worker count: a shared machine's slow spells only ever lower a rate


def _timed_run(config: SynthConfig, n: int, workers: int) -> tuple[float, float]:
    """(images/s wall, ms CPU per image in this process) of one `synthesize` call."""
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    synthesize(config, n, seed=0, workers=workers)
    return n / (time.perf_counter() - wall_start), (time.process_time() - cpu_start) / n * 1e3


def benchmark(quick: bool) -> list[str]:
    """Labelled 256x256 face images per second (rendered, degraded, JPEG-encoded, in memory).

    Prints and returns the wall-clock rate with one process and with one process per core,
    best and median of REPEATS runs, plus the CPU time per image of the single process and the
    load average, so a figure taken on a busy machine can be told from the renderer's own
    speed. As a long render does, the runs leave out what a process does once: building the
    meshes and textures (single process) and starting the forkserver the pools fork from; each
    pool's own start (its workers building their textures) stays in. The single process runs
    OpenCV on one thread, as each worker of the pool does: its own threads would add CPU time
    that a full pool has no spare core for.
    """
    n, repeats = (96, 1) if quick else (2000, REPEATS)
    config = SynthConfig()
    render_sample(config, 0, 0)  # builds the mesh and textures this config renders with, outside the timing
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        single = [_timed_run(config, n, workers=1) for _ in range(repeats)]
    finally:
        cv2.setNumThreads(opencv_threads)
    cpu_ms = min(cpu for _, cpu in single)
    rates = {1: [rate for rate, _ in single]}
    cores = os.cpu_count() or 1
    if cores > 1:
        synthesize(config, cores, seed=0, workers=cores)  # starts the pools' forkserver (once a process), untimed
        rates[cores] = [_timed_run(config, n, workers=cores)[0] for _ in range(repeats)]
    load = os.getloadavg()[0]
    lines = ["| workers | images | images/s (wall), best | median | runs |", "|---|---|---|---|---|"]
    for workers, runs in rates.items():
        best, median = max(runs), statistics.median(runs)
        print(f"renderer: {workers} worker(s): {best:.0f} images/s (best of {len(runs)}; median {median:.0f})")
        lines.append(f"| {workers} | {n} | {best:.0f} | {median:.0f} | {len(runs)} |")
    ceiling = cores * 1e3 / cpu_ms
    print(f"renderer: {cpu_ms:.1f} ms CPU per image in one process -> {ceiling:.0f} images/s on {cores} idle cores; "
          f"load average {load:.1f}")
    lines += ["", f"CPU time per image (one process, best run): {cpu_ms:.1f} ms, i.e. {ceiling:.0f} images/s on "
                  f"{cores} idle cores. Load average during the runs: {load:.1f} (other work on the machine lowers "
                  "the wall-clock rates).",
              f"Target: >= 200 images/s on 2 cores (DESIGN.md §7). JPEG quality {config.quality}, "
              "procedural backgrounds, occluders and all degradations on."]
    return lines
