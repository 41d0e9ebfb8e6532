"""Command line: parse flags into one config dataclass per command, then call the library."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from align.errors import AlignError

log = logging.getLogger("align")


def _add_encode_flags(p: argparse.ArgumentParser) -> None:
    """Flags of every command that encodes parallel data (retrieve, cka, probe)."""
    from align.encode import POOLINGS

    p.add_argument(
        "--ckpt",
        default=None,
        help="HF id, local or checkpoint dir (default: offline multilingual-e5-small)",
    )
    p.add_argument(
        "--data-dir", type=Path, default=None, help="XTREME-layout data (default: Bible demo set)"
    )
    p.add_argument(
        "--langs",
        default=None,
        help="comma list: deu,fra or de,fr (default: demo languages / all found)",
    )
    p.add_argument(
        "--layers", default="all", help="all | 8 | 4-12 | -1 | 0,6,12 (0 = embedding layer)"
    )
    p.add_argument("--pooling", choices=POOLINGS, default="mean")
    p.add_argument(
        "--exclude-special", action="store_true", help="leave <s>, </s> out of mean/max pooling"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto")
    p.add_argument(
        "--prefix",
        default=None,
        help='prepended to every sentence (default: the model\'s, "query: " for E5)',
    )
    p.add_argument(
        "--demo-n", type=int, default=1000, help="sentences per language in the demo set"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("results"))
    p.add_argument(
        "--no-cache", action="store_true", help="do not read or write the embedding cache"
    )
    p.add_argument("--no-plot", action="store_true")


def _encode_fields(args: argparse.Namespace) -> dict:
    return {
        "ckpt": args.ckpt,
        "data_dir": args.data_dir,
        "langs": args.langs,
        "layers": args.layers,
        "pooling": args.pooling,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "device": args.device,
        "dtype": args.dtype,
        "prefix": args.prefix,
        "exclude_special": args.exclude_special,
        "seed": args.seed,
        "out": args.out,
        "demo_n": args.demo_n,
        "use_cache": not args.no_cache,
        "plot": not args.no_plot,
        "progress": sys.stderr.isatty(),
    }


def _report(
    result: dict, result_path: Path, plot_path: Path | None, metric: str | None = None
) -> None:
    from align.report.tables import format_layer_table

    if metric != "":
        sys.stdout.write(format_layer_table(result, metric) + "\n")
    sys.stdout.write(f"results: {result_path}\n")
    if plot_path:
        sys.stdout.write(f"plot:    {plot_path}\n")


def _retrieve_parser(sub: argparse._SubParsersAction) -> None:
    from align.retrieval.bucc import MINING_MODES

    p = sub.add_parser("retrieve", help="per-layer Tatoeba accuracy / BUCC F1 of an encoder")
    _add_encode_flags(p)
    p.add_argument("--task", choices=("tatoeba", "bucc"), default="tatoeba")
    p.add_argument("--mining", choices=MINING_MODES, default="max", help="BUCC candidate mode")
    p.add_argument("--margin-k", type=int, default=4, help="neighbourhood size of the ratio margin")
    p.set_defaults(handler=_run_retrieve)


def _run_retrieve(args: argparse.Namespace) -> int:
    from align.retrieve import RetrieveConfig, run_retrieve

    cfg = RetrieveConfig(
        **_encode_fields(args), task=args.task, mining=args.mining, margin_k=args.margin_k
    )
    run = run_retrieve(cfg)
    _report(run.result, run.result_path, run.plot_path)
    return 0


def _cka_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cka", help="cross-lingual CKA per layer, or a layer x layer matrix (--ckpt-b)"
    )
    _add_encode_flags(p)
    p.add_argument(
        "--ckpt-b", default=None, help="second model: layer x layer CKA matrix against --ckpt"
    )
    p.add_argument(
        "--sigma-frac", type=float, default=0.5, help="RBF bandwidth / median pairwise distance"
    )
    p.add_argument("--rbf-max-n", type=int, default=2000, help="seeded subsample size for RBF CKA")
    p.set_defaults(handler=_run_cka)


def _run_cka(args: argparse.Namespace) -> int:
    from align.cka_runner import CkaConfig, run_cka

    cfg = CkaConfig(
        **_encode_fields(args),
        ckpt_b=args.ckpt_b,
        sigma_frac=args.sigma_frac,
        rbf_max_n=args.rbf_max_n,
    )
    run = run_cka(cfg)
    if cfg.ckpt_b is None:
        _report(run.result, run.result_path, run.plot_path, "cka_linear")
    else:
        from align.report.tables import format_matrix

        sys.stdout.write(format_matrix(run.result, "cka_linear") + "\n")
        _report(run.result, run.result_path, run.plot_path, "")
    return 0


def _probe_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe", help="per-layer alignment measures: cosine gap, mutual kNN, centering, ..."
    )
    _add_encode_flags(p)
    p.add_argument("--knn-k", type=int, default=10, help="k of the mutual kNN overlap")
    p.add_argument(
        "--outlier-factor", type=float, default=5.0, help="outlier dim: mean |x| > factor x median"
    )
    p.set_defaults(handler=_run_probe)


def _run_probe(args: argparse.Namespace) -> int:
    from align.probe_runner import ProbeConfig, run_probe

    cfg = ProbeConfig(**_encode_fields(args), knn_k=args.knn_k, outlier_factor=args.outlier_factor)
    run = run_probe(cfg)
    from align.report.tables import format_layer_table

    for metric in ("cos_gap", f"mknn@{cfg.knn_k}", "acc_centered_xx2en", "langid_acc"):
        sys.stdout.write(format_layer_table(run.result, metric) + "\n")
    _report(run.result, run.result_path, run.plot_path, "")
    return 0


def _data_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="build datasets")
    dsub = p.add_subparsers(dest="data_command", required=True)
    b = dsub.add_parser(
        "bible", help="Tatoeba- (or BUCC-) layout demo set from the installed Bible corpus"
    )
    b.add_argument("--langs", default="de,fr,es,ru,ar,vi")
    b.add_argument(
        "--n", type=int, default=1000, help="sentences (gold pairs for --bucc) per language"
    )
    b.add_argument("--out", type=Path, required=True)
    b.add_argument(
        "--bucc", action="store_true", help="BUCC layout: dev/test splits with distractors"
    )
    b.add_argument(
        "--distractor-ratio",
        type=float,
        default=1.0,
        help="BUCC: unpaired sentences per gold pair, each side",
    )
    b.add_argument(
        "--english", default="k", help="English edition code (k = KJV, 4 = WEB, 3 = BBE)"
    )
    b.add_argument(
        "--allow-copyrighted",
        action="store_true",
        help="also use copyrighted editions (local use only)",
    )
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(handler=_run_bible)


def _run_bible(args: argparse.Namespace) -> int:
    from align._io import atomic_dir
    from align.data.langs import iso1

    langs = [iso1(s.strip()) for s in args.langs.split(",") if s.strip()]
    if not langs:
        raise AlignError("--langs: no language given")
    if args.out.exists() and any(args.out.iterdir()):  # each file is still written atomically
        _build_bible(args, langs, args.out)
    else:
        with atomic_dir(args.out) as tmp:
            _build_bible(args, langs, tmp)
    sys.stdout.write(f"wrote {'BUCC' if args.bucc else 'Tatoeba'}-layout Bible set to {args.out}\n")
    return 0


def _build_bible(args: argparse.Namespace, langs: list[str], out: Path) -> None:
    from align.data import bible

    if args.bucc:
        bible.build_bucc_demo(
            out,
            langs,
            args.n,
            args.seed,
            args.english,
            args.allow_copyrighted,
            args.distractor_ratio,
        )
    else:
        bible.build_tatoeba_demo(
            out, langs, args.n, args.seed, args.english, args.allow_copyrighted
        )


def _models_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the models available offline")
    p.set_defaults(handler=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from align.models.default_model import default_model_dir
    from align.models.loading import OFFLINE_MODELS

    for info in OFFLINE_MODELS.values():
        built = "built" if (default_model_dir() / "config.json").is_file() else "built on first use"
        where = f"{built}: {default_model_dir()}"
        sys.stdout.write(
            f"{info.name}\t{info.description}\n\tprefix {info.default_prefix!r}; {where}\n"
        )
    sys.stdout.write(
        "Any Hugging Face id or local HF-format directory also works with --ckpt "
        "(hub ids need network).\n"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="align", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings only")
    sub = parser.add_subparsers(dest="command", required=True)
    _retrieve_parser(sub)
    _cka_parser(sub)
    _probe_parser(sub)
    from align.train.command import add_train_parser

    add_train_parser(sub)
    _data_parser(sub)
    _models_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("faiss").setLevel(logging.WARNING)
    try:
        return int(args.handler(args))
    except AlignError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
