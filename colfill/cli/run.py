"""`colfill run`, `colfill demo` and `colfill sample`."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from colfill.cli.options import DEFAULT_DATA_DIR, DataDir, DbOpt
from colfill.config import env

if TYPE_CHECKING:
    from colfill.pipeline import BackfillJob, RunResult

DEMO_START = dt.date(2024, 1, 2)
DEMO_END = dt.date(2024, 3, 28)


def _dates(start: str | None, end: str | None, years: int | None) -> tuple[dt.date, dt.date]:
    from colfill.errors import InvalidArgument
    from colfill.sources.flatfiles import parse_date

    end_d = parse_date(end, "--end") if end else dt.date.today()
    if start:
        if years is not None:
            raise InvalidArgument("give either --start or --years, not both")
        return parse_date(start, "--start"), end_d
    if years is not None and years < 1:
        raise InvalidArgument(f"--years {years} must be at least 1")
    n = years or 1
    try:
        start_d = end_d.replace(year=end_d.year - n)
    except ValueError:  # 29 February
        start_d = end_d.replace(year=end_d.year - n, day=28)
    return start_d, end_d


def run(
    tickers: Annotated[str | None, typer.Option(help="Comma-separated tickers, e.g. AAPL,TSLA. Default: all.")]
    = None,
    all_tickers: Annotated[bool, typer.Option("--all", help="Every ticker in the files (the default).")] = False,
    limit: Annotated[
        int | None,
        typer.Option(help="Only the N most traded tickers: highest median daily dollar volume (close x volume) over "
                     "the last 20 day files up to --end. The choice is recorded in <data-dir>/selections/, so reruns "
                     "and runs with a later --end keep the same tickers; --rerank ranks again."),
    ] = None,
    rerank: Annotated[bool, typer.Option("--rerank", help="With --limit: rank the tickers again at --end instead "
                                         "of keeping the recorded choice (a new ticker set starts its own "
                                         "indicator chain).")] = False,
    years: Annotated[int | None, typer.Option(help="How many years back from --end (default 1).")] = None,
    start: Annotated[str | None, typer.Option(help="First date, YYYY-MM-DD (instead of --years).")] = None,
    end: Annotated[str | None, typer.Option(help="Last date, YYYY-MM-DD (default today).")] = None,
    skip_daily: Annotated[bool, typer.Option("--skip-daily", help="Do not load day bars (bars_1d).")] = False,
    skip_minute: Annotated[bool, typer.Option("--skip-minute", help="Do not load minute bars (bars_1m).")] = False,
    timeframes: Annotated[str, typer.Option(help="Bars to store, comma-separated: 1m and 1d (the source's), and "
                                            "2m,3m,5m,10m,15m,30m,1h rolled up from the minutes, each also as :rth "
                                            "(regular session only; 1d:rth too), e.g. 1m,5m,1h,1d. See "
                                            "docs/timeframes.md.")] = "1m,1d",
    skip_reference: Annotated[bool, typer.Option("--skip-reference", help="Do not load reference data (tickers) "
                                                 "from REST (phase 1; runs when an API key is set).")] = False,
    skip_corporate: Annotated[bool, typer.Option("--skip-corporate", help="Do not load corporate actions (splits, "
                                                 "dividends) from REST (phase 2).")] = False,
    adjust: Annotated[
        str | None,
        typer.Option(help="What the bars_*_adjusted views restate: `splits` (prices / split ratios after the bar, "
                     "volume x them), or `dividends` (splits and cash dividends: total-return prices, "
                     "CRSP-style). Kept by the store until given again. Default: splits.", show_default=False),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(envvar="COLFILL_SOURCE", show_envvar=True,
                     help="Where bars come from: a flat-files root, s3://flatfiles (S3 keys in COLFILL_S3_KEY_ID/"
                     "COLFILL_S3_SECRET, endpoint COLFILL_S3_ENDPOINT) or a local folder with the same layout; or "
                     "`rest` for the REST API (key in POLYGON_API_KEY or MASSIVE_API_KEY). Default: flat files when "
                     "S3 keys are set, else REST when an API key is set."),
    ] = None,
    rest_url: Annotated[str | None, typer.Option(envvar="COLFILL_REST_URL", show_envvar=True,
                                                 help="REST host (default https://api.massive.com).")] = None,
    api_key: Annotated[str | None, typer.Option(help="REST API key (better: POLYGON_API_KEY or MASSIVE_API_KEY); "
                                                "never printed.", show_default=False)] = None,
    rate: Annotated[str | None, typer.Option(envvar="COLFILL_REST_RATE", show_envvar=True,
                                             help="REST requests allowed, e.g. 100/s (paid plans, the default) or "
                                             "5/min (free plan); never exceeded in any window.")] = None,
    rest_workers: Annotated[int, typer.Option(help="Concurrent REST requests.")] = 8,
    prefix: Annotated[str, typer.Option(envvar="COLFILL_PREFIX", help="Flat-files prefix.")] = "us_stocks_sip",
    db: DbOpt = None,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    indicators: Annotated[
        str | None,
        typer.Option(help="Indicator set, e.g. sma:10,ema:50,rsi:14,macd:12:26:9,bb:20:2,vwap (default: "
                     "sma_20, sma_50, ema_20, rsi_14, macd, bollinger 20/2, vwap)."),
    ] = None,
    load_workers: Annotated[int, typer.Option(help="Parallel load connections (PostgreSQL).")] = 2,
    executor: Annotated[str, typer.Option(help="Where days are parsed and indicators computed: `local` (this "
                                          "machine's cores) or `ray` (a Ray cluster; pip install "
                                          "'colfill[ray]'). The lake and store are the same either way.")]
    = "local",
    ray_address: Annotated[str | None, typer.Option(envvar="COLFILL_RAY_ADDRESS", show_envvar=True,
                                                    help="--executor ray: `auto` joins the cluster of `ray start` "
                                                    "on this node, ray://HOST:10001 a remote one; default: a Ray "
                                                    "instance started for this run.")] = None,
    workers: Annotated[int | None, typer.Option(help="CPUs to use (local executor, or the Ray instance started "
                                                "for the run). Default: every core.")] = None,
    shards: Annotated[int | None, typer.Option(help="Ticker shards whose indicator chains run in parallel (a stable "
                                               "hash of the ticker). Default: 1 per 4 local cores, 1 per Ray CPU; "
                                               "at most 8.", show_default=False)] = None,
    timescale: Annotated[
        bool | None,
        typer.Option("--timescale/--no-timescale", show_default=False,
                     help="PostgreSQL: bars tables as TimescaleDB hypertables (--timescale creates the extension), "
                     "or plain tables. Default: hypertables when the extension exists."),
    ] = None,
    create_db: Annotated[bool, typer.Option("--create-db", help="PostgreSQL: create the database if missing.")]
    = False,
    compress: Annotated[
        bool,
        typer.Option("--compress/--no-compress",
                     help="TimescaleDB: compress each day's chunks as soon as they are loaded and older than the "
                     "policy's compress_after, so a backfill's disk stays near its compressed size; --no-compress "
                     "leaves them to the compression policy."),
    ] = True,
    redis: Annotated[str | None, typer.Option("--redis", envvar="COLFILL_REDIS_URL", show_default=False,
                                              help="Also publish the run's progress on Redis (redis://host:port/db) "
                                              "for `colfill ui`; it is always in <data-dir>/progress/run.json.")]
    = None,
) -> None:
    """Backfill bars from flat files: validate, compute indicators, stage Parquet, load the store.

    Resumable: a rerun skips days already staged and loaded, reprocesses a day whose file changed (and the
    days after it, whose indicators depend on it), and loads what the store is missing. Ctrl-C or SIGTERM
    stops cleanly after the days in flight (exit 130 or 143); run again to continue. Exit codes: colfill --help.
    """
    from colfill.errors import InvalidArgument
    from colfill.indicators.spec import IndicatorSet
    from colfill.pipeline import TABLES, BackfillJob
    from colfill.timeframes import parse as parse_timeframes

    if tickers and all_tickers:
        raise InvalidArgument("give either --tickers or --all, not both")
    if skip_daily and skip_minute:
        raise InvalidArgument("--skip-daily and --skip-minute together leave nothing to do")
    tick = tuple(sorted({t.strip() for t in tickers.split(",") if t.strip()})) if tickers else None
    s, e = _dates(start, end, years)
    indicator_set = IndicatorSet.parse(indicators)
    if rerank and limit is None:
        raise InvalidArgument("--rerank re-ranks the tickers of --limit N; give --limit too")
    rest = None
    root = source or env("COLFILL_SOURCE") or _default_source()
    if root == "rest":
        from colfill.sources.rest import RestSettings

        rest = RestSettings.from_env(url=rest_url, api_key=api_key, rate=rate, workers=rest_workers)
    chosen = {tf.table for tf in parse_timeframes(timeframes) if not tf.derived}
    tables = tuple(t for t in TABLES if t in chosen and not (t == "bars_1d" and skip_daily)
                   and not (t == "bars_1m" and skip_minute))
    if not tables:
        raise InvalidArgument(f"--timeframes {timeframes} with --skip-daily/--skip-minute leaves nothing to do")
    job = BackfillJob(
        source=root, rest=rest,
        start=s, end=e, data_dir=data_dir, tables=tables, tickers=tick, limit=limit,
        indicators=indicator_set, prefix=prefix, store_url=db, rerank=rerank,
        phases=tuple(p for p, skip in (("reference", skip_reference), ("corporate", skip_corporate)) if not skip),
        adjust=adjust, timeframes=tuple(tf.name for tf in parse_timeframes(timeframes)),
    )
    result = execute(job, load_workers=load_workers, timescale=timescale, create_db=create_db, compress=compress,
                     redis_url=redis, executor=executor, ray_address=ray_address, workers=workers,
                     shards=shards)
    raise typer.Exit(exit_code(result))


def _default_source() -> str:
    """Flat files when S3 keys are set, else REST when an API key is, else say what to set."""
    from colfill.config import api_key
    from colfill.errors import InvalidArgument

    if env("COLFILL_S3_KEY_ID", "AWS_ACCESS_KEY_ID") and env("COLFILL_S3_SECRET", "AWS_SECRET_ACCESS_KEY"):
        return "s3://flatfiles"
    if api_key():
        return "rest"
    raise InvalidArgument("no source: set COLFILL_S3_KEY_ID and COLFILL_S3_SECRET for flat files, or "
                          "POLYGON_API_KEY (or MASSIVE_API_KEY) for the REST API, or pass --source (a folder, "
                          "s3://flatfiles or rest).")


def exit_code(result: RunResult) -> int:
    """The documented code of a finished run (colfill.errors.EXIT_CODES)."""
    from colfill import errors

    if result.stopped is not None:
        return result.stopped.exit_code
    return errors.OK if result.ok else errors.PARTIAL


def execute(job: BackfillJob, load_workers: int = 2, timescale: bool | None = None, create_db: bool = False,
            compress: bool = True, redis_url: str | None = None, executor: str = "local",
            ray_address: str | None = None, workers: int | None = None, shards: int | None = None) -> RunResult:
    """Run a job with a Rich progress display and print the summary; returns the RunResult."""
    from colfill import interrupt, pipeline
    from colfill.cli.output import RichReporter, console, summary
    from colfill.execute import open_executor
    from colfill.progress import ProgressFile, Tee
    from colfill.stores import open_store
    from colfill.target import resolve

    err = console(stderr=True)
    target = resolve(job.store_url, job.data_dir)
    runner = open_executor(executor, address=ray_address, workers=workers, shards=shards)  # no cluster: fail first
    store = open_store(target, load_workers=load_workers, timescale=timescale, create_db=create_db, compress=compress)
    origin = f"REST {getattr(job.rest, 'url', 'API')}" if job.source == "rest" else f"{job.source}/{job.prefix}"
    err.print(f"colfill: {origin} {job.start}..{job.end} → {store.describe()}", highlight=False)
    if runner.name != "local":
        err.print(f"executor: {runner.describe()}", highlight=False)
    for notice in getattr(store, "notices", ()):
        err.print(f"[yellow]notice:[/] {notice}", highlight=False, soft_wrap=True)
    t0 = time.perf_counter()
    stop = interrupt.Stop()
    progress = ProgressFile(job.data_dir, redis_url)  # for `colfill ui`: progress/run.json (and Redis)
    result: RunResult | None = None
    try:
        with RichReporter(err) as rich, interrupt.graceful(stop, rich.note):
            result = pipeline.run(job, store, reporter=Tee(rich, progress), stop=stop, executor=runner)
    finally:
        runner.close()
        store.close()
        progress.finish(result)
    assert result is not None
    summary(err, result, time.perf_counter() - t0)
    if result.interrupted:
        done, todo = result.progress()
        err.print(f"interrupted after {done} of {todo} days; run again to continue", highlight=False)
    return result


def demo(
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    tickers: Annotated[int, typer.Option(help="How many sample tickers.")] = 40,
    seed: Annotated[int, typer.Option(help="Sample data seed.")] = 7,
) -> None:
    """Generate sample flat files, backfill them into the embedded store (the lake), show an SQL query."""
    from colfill.cli.output import console as make_console
    from colfill.cli.sql import run_sql
    from colfill.indicators.spec import IndicatorSet
    from colfill.pipeline import BackfillJob
    from colfill.sample import generate

    console = make_console(stderr=True)
    src = data_dir / "sample-flatfiles"
    if not (src / "us_stocks_sip").exists():
        console.print(f"Writing sample flat files ({tickers} tickers, {DEMO_START}..{DEMO_END}) to {src}")
        info = generate(src, DEMO_START, DEMO_END, tickers=tickers, seed=seed)
        console.print(f"  {info.files} files, {info.rows:,} rows")
    job = BackfillJob(source=str(src), start=DEMO_START, end=DEMO_END, data_dir=data_dir,
                      indicators=IndicatorSet.default())
    result = execute(job)
    if not result.ok:
        raise typer.Exit(exit_code(result))
    query = (
        "SELECT ticker, ts::DATE AS date, close, round(sma_20, 2) AS sma_20, round(rsi_14, 1) AS rsi_14, "
        "round(macd_hist, 3) AS macd_hist, round(vwap, 2) AS vwap FROM bars_1d "
        "WHERE ticker IN ('AAPL', 'MSFT', 'NA') QUALIFY row_number() OVER (PARTITION BY ticker ORDER BY ts DESC) = 1 "
        "ORDER BY ticker"
    )
    console.print(f"\n[bold]colfill sql[/] \"{query}\"", highlight=False)
    run_sql(query, data_dir, None, "table")
    console.print(
        f"\nTry: colfill sql \"SELECT ticker, count(*) FROM bars_1m GROUP BY ALL ORDER BY 2 DESC LIMIT 5\" "
        f"--data-dir {data_dir}\n     colfill state export --data-dir {data_dir} --out state.parquet   "
        "# the live engine's starting point", highlight=False,
    )


def sample(
    out: Annotated[Path, typer.Option(help="Folder (or fsspec URL) to write the flat files into.")] = Path(
        "sample-flatfiles"),
    start: Annotated[str, typer.Option(help="First date, YYYY-MM-DD.")] = DEMO_START.isoformat(),
    end: Annotated[str, typer.Option(help="Last date, YYYY-MM-DD.")] = DEMO_END.isoformat(),
    tickers: Annotated[int, typer.Option(help="How many tickers.")] = 40,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed writes the same bytes.")] = 7,
    minute: Annotated[bool, typer.Option(help="Write minute_aggs_v1 files.")] = True,
    daily: Annotated[bool, typer.Option(help="Write day_aggs_v1 files.")] = True,
) -> None:
    """Write realistic sample flat files in the exact Polygon layout and format."""
    from rich.console import Console

    from colfill.errors import InvalidArgument
    from colfill.sample import generate
    from colfill.sources.flatfiles import parse_date

    datasets = tuple(d for d, on in (("minute_aggs_v1", minute), ("day_aggs_v1", daily)) if on)
    if not datasets:
        raise InvalidArgument("--no-minute and --no-daily together write nothing")
    info = generate(str(out), parse_date(start, "--start"), parse_date(end, "--end"), tickers=tickers, seed=seed,
                    datasets=datasets)
    Console(stderr=True).print(f"wrote {info.files} files, {info.rows:,} rows under {out}")
