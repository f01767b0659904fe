"""`spine-localizer plan` over one input or many: each input planned into its own output folder, one after the
other or in worker processes, with a line per input (time left, doubts) and the batch's pace at the end.

Why worker processes for batches: on this project's 2-core CPU, 6 phantom localizers planned by the command
(every output written, worker start-up included) took 19.1-19.4 s in two worker processes with one thread each
(18.6-18.9 per minute, three runs) and 23.8-25.1 s in one process with two intra-op threads (14.3-15.1 per
minute): much of a plan (resampling, labelling, writing) runs on one core whatever torch's thread count
(docs/results.md, Batches). Each worker loads the networks once and keeps them for all its inputs.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from .networks import MODEL_DIR, ModelError
from .output_folder import output_folder
from .planning.doubts import attach_doubts
from .planning.plan import build_plan
from .planning.writer import write_plan_outputs
from .volume_io import Volume, read_volume, write_volume


@dataclass
class Case:
    """One input of a batch: its number (from 1), the image, where its plan goes and what the manifest records."""

    k: int
    image: Path
    out: Path
    record: dict | None
    labels: Path | None = None


@dataclass
class Outcome:
    k: int
    image: Path
    out: Path
    error: str | None = None
    summary: str = ""
    doubts: list[str] = field(default_factory=list)


def default_jobs(n_inputs: int) -> int:
    """Worker processes for a batch: one per core, at most one per input and two (each holds ~1.1 GB)."""
    return max(1, min(n_inputs, os.cpu_count() or 1, 2))


def run_cases(cases: list[Case], args, protocol, jobs: int, n_total: int, skipped: int) -> tuple[int, int]:
    """Plan every case, in this process (`jobs` 1) or in `jobs` worker processes with one thread each; print a
    line per case as it finishes. Returns (failures, doubtful)."""
    started = time.perf_counter()
    failures = doubtful = 0
    done = 0

    def report(outcome: Outcome) -> None:
        nonlocal failures, doubtful, done
        done += 1
        if outcome.error is not None:
            failures += 1
            print(f"spine-localizer plan: {outcome.image}: {outcome.error}", file=sys.stderr)
            return
        print(
            f"[{outcome.k}/{n_total}] {outcome.image.name}: {outcome.summary} -> {outcome.out}"
            + _eta(started, done, len(cases)),
            file=sys.stderr,
        )
        for reason in outcome.doubts:
            print(f"  CHECK PLAN: {reason}", file=sys.stderr)
        doubtful += bool(outcome.doubts)

    if jobs <= 1 or len(cases) <= 1:
        for case in cases:
            report(plan_case(case, args, protocol))
    else:
        # Spawned, not forked: a forked child of a process whose OpenMP pools have run can hang in them.
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_one_thread_worker) as pool:
            futures = [pool.submit(plan_case, case, args, protocol, 1) for case in cases]
            for future in as_completed(futures):
                report(future.result())
    if n_total > 1:
        secs = time.perf_counter() - started
        planned = len(cases) - failures
        rate = f", {60 * planned / secs:.1f} planned per minute" if planned and secs > 0 else ""
        workers = f" in {jobs} worker processes" if jobs > 1 and len(cases) > 1 else ""
        print(
            f"{n_total} inputs: {planned} planned, {failures} failed, {skipped} done before; "
            f"{secs:.1f} s{workers}{rate}; {doubtful} doubtful",
            file=sys.stderr,
        )
    return failures, doubtful


def _one_thread_worker() -> None:
    """A worker of a batch: one BLAS and one torch thread (the other workers have the other cores)."""
    from .parallel import single_threaded_blas

    single_threaded_blas()
    import torch

    torch.set_num_threads(1)


def _eta(started: float, done: int, n: int) -> str:
    """Time left of a batch at the pace of the inputs planned so far (those skipped by --resume cost nothing)."""
    if n <= 1 or done <= 0 or done == n:
        return ""
    left = (time.perf_counter() - started) / done * (n - done)
    return f"; about {left:.0f} s left"


def plan_case(case: Case, args, protocol, threads: int = 2) -> Outcome:
    """Plan one input into its output folder; an error a user can act on becomes the outcome's message."""
    outcome = Outcome(case.k, case.image, case.out)
    try:
        if case.labels is not None:
            plan, image = _plan_from_labels(case.image, case.labels, protocol, args.lumbar_count, args.series)
            extra = {}
        else:
            plan, image, extra = _plan_with_networks(case.image, args, protocol, threads)
        inputs = [case.image] + [Path(p) for p in (args.discs or [])] + ([Path(args.coronal)] if args.coronal else [])
        with output_folder(case.out, command="plan", inputs=inputs, force=args.force, record=case.record) as stage:
            for name, vol in extra.items():
                write_volume(vol, stage / name)
            write_plan_outputs(stage, plan, image)
    except (ValueError, FileNotFoundError, ModelError) as err:
        outcome.error = str(err)
        return outcome
    naming = plan["naming"]
    outcome.summary = (
        f"{len(plan['discs'])} discs ({plan['discs'][0]['label']} .. {plan['discs'][-1]['label']}), "
        f"{plan['lumbar_count']} lumbar vertebrae ({naming['count_basis']}), quality {plan['quality_factor']:.2f}, "
        f"{plan['timings_s']['total'] * 1000:.0f} ms"
    )
    outcome.doubts = [d["reason"] for d in plan["doubts"]]
    return outcome


def _plan_from_labels(image_path: Path, label_path: Path, protocol, lumbar_count, series=None):
    image = read_volume(image_path, series)
    labels = read_volume(label_path)
    plan, _ = build_plan(
        labels,
        image=image,
        protocol=protocol,
        lumbar_count=lumbar_count,
        input_info={"image": str(image_path), "labels": str(label_path)},
    )
    return attach_doubts(plan), image


def _plan_with_networks(image_path: Path, args, protocol, threads: int):
    from .networks.infer import discs_on, spine_on
    from .pipeline import LooksFlipped, plan_from_localizer

    image = read_volume(image_path, args.series)
    inputs = [image] + ([read_volume(args.coronal)] if args.coronal else [])
    try:
        plan, result = plan_from_localizer(
            inputs,
            protocol=protocol,
            lumbar_count=args.lumbar_count,
            model_dir=Path(args.models) if args.models else MODEL_DIR,
            grid_axes=args.grid_axes,
            input_info={"image": str(image_path), "coronal": args.coronal},
            check_orientation=not args.trust_header,
            threads=threads,
        )
    except LooksFlipped as err:
        raise ValueError(f"{err}, or give --trust-header to plan it as it is") from err
    extra = {
        "discs.nii.gz": Volume(discs_on(result, image), image.spacing, image.origin, image.direction),
        "spine.nii.gz": Volume(spine_on(result, image), image.spacing, image.origin, image.direction),
    }
    return plan, image, extra
