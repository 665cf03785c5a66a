"""pcm: PCMasking for climate-model parameterizations, as a re-executable book.

Usage (docs/architecture.md, "Command line")::

    pcm data synthetic --out DIR [--steps N] [--seed S] [--lat N] [--lon N] [--world W]
    pcm data check FILE [--norm NORM]
    pcm data climsim --src DIR --out DIR [--include GLOB ...] [--grid FILE]
        [--months A:B | --climsim-subset | --train-months A:B --valid-months A:B
         --test-months A:B] [--stride N] [--workers N | --scheduler ADDRESS]
    pcm run [--preset ci|tutorial|paper|climsim|climsim-full] [--params FILE.yml]
        [--set key=value ...] [--out DIR] [--dry-run]
    pcm sweep --grid key=v1,v2 [--grid ...] --out DIR [--preset P] [--params F] [--set k=v]
    pcm worlds --worlds A-B [--method NAME[:k=v,...] ...] --out DIR [--preset P] [--set k=v]
    pcm experiments --run RUN [--set name=value ...] [--book-dir DIR] [--prepare]
    pcm online --run RUN [--seeds 0,1,2] [--days D] [--lat N --lon N] [--causal] [--book-dir DIR]
    pcm real-data --book-dir DIR [--climsim-run RUN] [--synthetic-run RUN]
    pcm exercises --out DIR

Errors that concern the user's input (:class:`pcm.errors.PCMError`) and the
operating system's refusals to create or write a file (:class:`OSError`: a
``--out`` below a file, permission denied, disk full) are printed as one line
on standard error, naming the path and the problem, and exit with status 2;
nothing else is caught.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pcm.data.climsim import CHUNK_STEPS, CLIMSIM_SUBSET
from pcm.errors import ParameterError, PCMError
from pcm.params.presets import METHODS, PARAMETERS

# Each command imports the modules it runs when it runs: the parser needs only the light
# modules above, while all of pcm takes 1.4-2 s to import (TensorFlow is imported later
# still, by the steps that train). Importing this module takes 0.50-0.53 s, and `pcm data
# climsim` reaches its conversion 0.6-0.8 s after it starts (benchmarks/convert.py).

__all__ = ["main", "build_parser"]


def _data_synthetic(args: argparse.Namespace) -> None:
    from pcm.data.datasets import write_synthetic_dataset
    from pcm.io import output_dir

    output_dir(args.out)
    paths = write_synthetic_dataset(args.out, steps=args.steps, seed=args.seed,
                                    n_lat=args.lat, n_lon=args.lon, world=args.world)
    for name, path in paths.items():
        print(f"{name:8s} {path}")


def _data_check(args: argparse.Namespace) -> None:
    from pcm.data.checks import check_file

    print(check_file(args.file, norm=args.norm))


def _data_climsim(args: argparse.Namespace) -> None:
    from pcm.data.climsim import convert_climsim

    split_months = None
    if args.train_months or args.valid_months or args.test_months:
        split_months = {"train": args.train_months, "valid": args.valid_months,
                        "test": args.test_months}
        missing = [k for k, v in split_months.items() if v is None]
        if missing:
            raise ParameterError(f"--{missing[0]}-months", "needed too: month ranges are "
                                 "given for all three splits or none")
    if args.climsim_subset:
        split_months = split_months or dict(CLIMSIM_SUBSET["split_months"])
    default_stride = CLIMSIM_SUBSET["stride"] if args.climsim_subset else 1
    stride = default_stride if args.stride is None else args.stride  # not `or`: 0 is refused
    paths = convert_climsim(args.src, args.out, include=args.include or None, grid=args.grid,
                            months=args.months, stride=stride,
                            split_months=split_months, chunk_steps=args.chunk_steps,
                            workers=args.workers, scheduler=args.scheduler,
                            progress=not args.quiet)
    for name, path in paths.items():
        print(f"{name:8s} {path}")


def _run(args: argparse.Namespace) -> None:
    from pcm.run.dry_run import dry_run
    from pcm.run.pipeline import run

    if args.dry_run:
        print(dry_run(args.preset, args.params, args.set))
        return
    run(preset=args.preset, params_file=args.params, overrides=args.set, out=args.out,
        book_dir=args.book_dir)


def _sweep(args: argparse.Namespace) -> None:
    from pcm.experiments.sweep import run_sweep

    run_sweep(preset=args.preset, grid=args.grid, out=args.out, params_file=args.params,
              overrides=args.set, progress=args.progress)


def _worlds(args: argparse.Namespace) -> None:
    from pcm.experiments.worlds import run_worlds

    run_worlds(worlds=args.worlds, methods=args.method or None, out=args.out,
               preset=args.preset, params_file=args.params, overrides=args.set,
               progress=args.progress)


def _experiments(args: argparse.Namespace) -> None:
    from pcm.experiments.chapter import NOTEBOOK, run_notebook
    from pcm.experiments.chapter_sweeps import prepare
    from pcm.params.run_parameters import parse_override

    given = dict(parse_override(o) for o in args.set)
    if args.prepare:
        prepare(args.run, given, progress=args.progress)
        print(f"experiments chapter: sweeps and worlds finished under {args.run}/experiments")
        return
    parameters = {"run_dir": str(args.run), **given}
    dst = run_notebook(NOTEBOOK, args.run / "notebooks" / NOTEBOOK.name, parameters,
                       book_dir=args.book_dir)
    print(f"executed notebook: {dst}")


def _online(args: argparse.Namespace) -> None:
    from pcm.io import output_dir
    from pcm.online.runner import NOTEBOOK as ONLINE_NOTEBOOK
    from pcm.online.runner import OnlineConfig, run_online
    from pcm.online.runner import run_notebook as run_online_notebook

    try:
        seeds = tuple(int(s) for s in args.seeds.split(","))
    except ValueError:
        raise ParameterError("--seeds", f"expected integers separated by commas, got "
                             f"{args.seeds!r}") from None
    config = OnlineConfig(seeds=seeds, days=args.days, n_lat=args.lat, n_lon=args.lon,
                          causal=args.causal)
    output_dir(args.run)
    run_online(args.run, config, progress=args.progress)
    if not args.no_notebook:
        dst = run_online_notebook(args.run, args.run / "notebooks" / ONLINE_NOTEBOOK.name,
                                  book_dir=args.book_dir)
        print(f"executed notebook: {dst}")


def _real_data(args: argparse.Namespace) -> None:
    from pcm.run.pipeline import run_real_data_chapter

    print(run_real_data_chapter(args.book_dir, climsim_run=args.climsim_run,
                                synthetic_run=args.synthetic_run))


def _exercises(args: argparse.Namespace) -> None:
    from pcm.book.exercises import write_student_copies
    from pcm.io import output_dir
    from pcm.run.steps import NOTEBOOK_DIR

    output_dir(args.out)
    for path in write_student_copies(args.src or NOTEBOOK_DIR, args.out):
        print(path)


def _book(args: argparse.Namespace) -> None:
    from pcm.book.launch import prepare_book

    prepare_book(args.notebooks, args.repository, args.config, args.write_config)


def _add_point_options(parser: argparse.ArgumentParser, out_help: str) -> None:
    """The options shared by the commands that run the method at many points."""
    parser.add_argument("--preset", default="ci",
                        help="a preset of pcm run: ci (default), tutorial, paper; climsim "
                             "with --set data.dir=DIR")
    parser.add_argument("--params", type=Path, default=None, help="YAML file of parameters")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one parameter at every point (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help=out_help)
    parser.add_argument("--progress", action="store_true", help="per-epoch lines on stderr")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pcm`` command."""
    parser = argparse.ArgumentParser(
        prog="pcm", description=__doc__.split("\n")[0],
        epilog="Layers, run-directory artefacts and file layouts: docs/architecture.md")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="make or check data in the CBRAIN layout")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    synth = data_sub.add_parser("synthetic", help="write the synthetic SPCAM-like aquaplanet")
    synth.add_argument("--out", required=True, type=Path, help="output directory")
    synth.add_argument("--steps", type=int, default=PARAMETERS["data.steps"].default,
                       help="half-hourly time steps (train+valid+test)")
    synth.add_argument("--seed", type=int, default=0, help="random seed")
    synth.add_argument("--lat", type=int, default=None, help="number of latitudes (default 64)")
    synth.add_argument("--lon", type=int, default=None, help="number of longitudes (default 128)")
    synth.add_argument("--world", type=int, default=0,
                       help="the physics: 0 the aquaplanet (default), 1-99 development and "
                       "100-199 held-out worlds drawn from this seed")
    synth.set_defaults(func=_data_synthetic)
    check = data_sub.add_parser("check", help="validate a CBRAIN-layout file")
    check.add_argument("file", type=Path)
    check.add_argument("--norm", type=Path, default=None,
                       help="normalisation file to check against")
    check.set_defaults(func=_data_check)
    climsim = data_sub.add_parser(
        "climsim", help="convert ClimSim low-res mli/mlo files (E3SM-MMF) into the CBRAIN layout")
    climsim.add_argument("--src", required=True, type=Path,
                         help="folder of the files as published (searched recursively)")
    climsim.add_argument("--out", required=True, type=Path,
                         help="output directory (train.nc valid.nc test.nc norm.nc)")
    climsim.add_argument("--include", action="append", default=[], metavar="GLOB",
                         help="only mli files whose path below --src or name matches "
                         "(repeatable), e.g. 'train/0008-0[1-3]/*'")
    climsim.add_argument("--grid", type=Path, default=None,
                         help="ClimSim_low-res_grid-info.nc (default: found under --src)")
    climsim.add_argument("--months", default=None, metavar="YYYY-MM:YYYY-MM",
                         help="only steps of these months (both included), dealt to the "
                         "three splits interleaved")
    for split in ("train", "valid", "test"):
        climsim.add_argument(f"--{split}-months", default=None, metavar="YYYY-MM:YYYY-MM",
                             help=f"explicit months of the {split} split (give all three)")
    climsim.add_argument("--climsim-subset", action="store_true",
                         help="ClimSim's subset: every 7th step, train 0001-02:0008-01, valid "
                         "0008-02:0009-01, test 0009-03:0010-02")
    climsim.add_argument("--stride", type=int, default=None,
                         help="every n-th step of each selection (ClimSim: 7)")
    climsim.add_argument("--chunk-steps", type=int, default=CHUNK_STEPS,
                         help=f"steps per chunk: record, write and read block (default "
                         f"{CHUNK_STEPS})")
    climsim.add_argument("--workers", type=int, default=None,
                         help="processes of the local dask cluster (default: all cores; 1: "
                         "serial)")
    climsim.add_argument("--scheduler", default=None, metavar="ADDRESS",
                         help="a running dask scheduler (tcp://host:8786) instead of a local "
                         "cluster; its workers must see --src and --out, and write "
                         "disjoint parts of one file there")
    climsim.add_argument("--quiet", action="store_true", help="no progress bar")
    climsim.set_defaults(func=_data_climsim)

    run_cmd = sub.add_parser("run", help="run the six notebooks of the pipeline with papermill")
    run_cmd.add_argument("--preset", default="tutorial", help="ci, tutorial or paper")
    run_cmd.add_argument("--params", type=Path, default=None, help="YAML file of parameters")
    run_cmd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override one parameter (repeatable)")
    run_cmd.add_argument("--dry-run", action="store_true",
                         help="print samples, disk, memory and an estimated time, run nothing")
    run_cmd.add_argument("--out", type=Path, default=None,
                         help="run directory (default runs/PRESET)")
    run_cmd.add_argument("--book-dir", type=Path, default=None,
                         help="also copy the executed notebooks here (make book: "
                         "book/notebooks)")
    run_cmd.set_defaults(func=_run)

    sweep = sub.add_parser("sweep", help="run the method over a grid of parameter values "
                           "and write one table (sweep.nc, sweep.csv)")
    sweep.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2,...",
                       help="values of one parameter (repeatable; the grid is their product; "
                       "l1 values train as one stack)")
    _add_point_options(sweep, "sweep directory")
    sweep.set_defaults(func=_sweep)

    worlds = sub.add_parser("worlds", help="run methods over many synthetic worlds and write "
                            "one table (worlds.nc, worlds.csv) and worlds.png")
    worlds.add_argument("--worlds", action="append", required=True, metavar="W,A-B",
                        help="world seeds (repeatable): 0-99 development, 100-199 held-out, "
                        "e.g. --worlds 100-119")
    worlds.add_argument("--method", action="append", default=[], metavar="NAME[:K=V,...]",
                        help="a method: a built-in name (" + ", ".join(METHODS) + ") or "
                        "NAME:key=value,key=value (repeatable; default paper and relative)")
    _add_point_options(worlds, "worlds directory")
    worlds.set_defaults(func=_worlds)

    exp = sub.add_parser("experiments", help="execute the experiments notebook "
                         "(08_experiments) on a finished run")
    exp.add_argument("--run", type=Path, required=True, help="a finished run directory")
    exp.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="a parameter of the notebook's parameters cell (repeatable; YAML "
                     "values, e.g. lambdas=[1,0.1])")
    exp.add_argument("--book-dir", type=Path, default=None,
                     help="also copy the executed notebook here (make book: book/notebooks)")
    exp.add_argument("--prepare", action="store_true",
                     help="only run the chapter's sweeps and worlds, which need no finished "
                     "run (make book runs this beside pcm run; the notebook then finds them "
                     "finished)")
    exp.add_argument("--progress", action="store_true", help="per-point progress lines "
                     "(with --prepare)")
    exp.set_defaults(func=_experiments)

    onl = sub.add_parser("online", help="couple the networks to a prognostic single-column "
                         "testbed (truth, zero, unconstrained, PCMasking) and execute "
                         "09_online")
    onl.add_argument("--run", type=Path, required=True,
                     help="run directory; the online artefacts go to RUN/online")
    onl.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    onl.add_argument("--days", type=float, default=30.0, help="simulated days online")
    onl.add_argument("--lat", type=int, default=8, help="latitudes of the columns")
    onl.add_argument("--lon", type=int, default=8, help="longitudes of the columns")
    onl.add_argument("--causal", action="store_true",
                     help="also the causally-informed networks (PC1 discovery per seed; slow)")
    onl.add_argument("--book-dir", type=Path, default=None,
                     help="also copy the executed notebook here (make book: book/notebooks)")
    onl.add_argument("--no-notebook", action="store_true", help="only the artefacts")
    onl.add_argument("--progress", action="store_true", help="per-epoch lines on stderr")
    onl.set_defaults(func=_online)

    real = sub.add_parser("real-data", help="execute the real-data chapter (published SPCAM "
                          "masks, and a ClimSim run if given) into the book")
    real.add_argument("--book-dir", type=Path, required=True,
                      help="where the executed notebook goes (book/notebooks)")
    real.add_argument("--climsim-run", type=Path, default=None,
                      help="run directory of pcm run --preset climsim")
    real.add_argument("--synthetic-run", type=Path, default=None,
                      help="a finished synthetic run (runs/tutorial), read side by side")
    real.set_defaults(func=_real_data)

    ex = sub.add_parser("exercises", help="write student copies of the notebooks (no solutions)")
    ex.add_argument("--src", type=Path, default=None,
                    help="notebook sources (default: those pcm ships, pcm.run.steps.NOTEBOOK_DIR)")
    ex.add_argument("--out", type=Path, required=True, help="where to write the copies")
    ex.set_defaults(func=_exercises)

    book = sub.add_parser("book", help="add (with --repository) or remove the pcm setup cell "
                          "of the book's notebooks and write the configuration to build with "
                          "(make html)")
    book.add_argument("notebooks", type=Path,
                      help="folder of executed notebooks (book/notebooks)")
    book.add_argument("--repository", default="",
                      help="GitHub owner/name (BOOK_REPOSITORY); empty: no buttons")
    book.add_argument("--config", type=Path, default=None, help="the book's _config.yml")
    book.add_argument("--write-config", type=Path, default=None,
                      help="where to write the configuration to build with")
    book.set_defaults(func=_book)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pcm`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except PCMError as err:
        print(f"pcm: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.filename is None:
            raise
        problem = err.strerror or err.__class__.__name__
        print(f"pcm: error: {err.filename}: {problem}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
