"""Atlas assets: the Thermodynamic Bridge model, the Energy Atlas hierarchy and what is read from it.

* ``bridge_model``: retrains the TBM (``atlas_core.bridge.train.train_model``) on the PrusaSlicer G-code of a
  folder, seeded, and commits the weights through the storage resource (skipped when inputs are unchanged).
* ``energy_atlas``: for every pair of the pairing manifest (``ATLAS_PAIRS``, default
  ``samples/pairs/pairs.yaml``): the planned voxel grid, the observed activity tensor and the alignment
  (``atlas_core.bridge.find_leaks``) as groups ``planned/``, ``observed/``, ``aligned/<pair>`` of ONE Zarr
  hierarchy (``atlas_core.atlas.store``), each group skipped when its content hash is unchanged; the per-pair
  table is committed as ``atlas/pairs``. A pair that fails is a row with a one-line error, never a failed run.
* ``entropy_leaks``, ``shield_alerts``, ``negentropy_ledger``: tables (and the Markdown/HTML leak report) read
  from the hierarchy, committed through storage.

The hierarchy lives in the storage folder (``<storage>/atlas/energy_atlas.zarr``); on S3 it is built in a
local cache folder and committed as one zip item (``atlas/energy_atlas_zip``).
"""

import dataclasses
import hashlib
import io
import json
import math
import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

import atlas_core
from atlas_core.atlas import ledger as ledger_mod
from atlas_core.atlas import shield, store
from atlas_core.atlas.pairs import Pair, PairsError, load_pairs
from atlas_core.atlas.report import power_plot_png, write_report
from atlas_core.atomic import dumps_strict
from atlas_core.bridge.report import LeakReport
from atlas_core.gcode.voxel import sha256_file
from atlas_core.redact import one_line_error
from atlas_core.safe_load import read_bounded
from atlas_resources import AtlasStorage

from ..tables import table_digest
from . import checks

DOMAIN = "atlas"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_PAIRS = REPO / "samples" / "pairs" / "pairs.yaml"
DEFAULT_BRIDGE_GCODE = REPO / "samples" / "gcode"
MODEL_KEY = f"{DOMAIN}/bridge_model"
PAIRS_KEY = f"{DOMAIN}/pairs"
INDEX_KEY = f"{DOMAIN}/energy_atlas"
ZIP_KEY = f"{DOMAIN}/energy_atlas_zip"
LEAKS_KEY = f"{DOMAIN}/entropy_leaks"
REPORT_MD_KEY = f"{DOMAIN}/entropy_leaks_md"
REPORT_HTML_KEY = f"{DOMAIN}/entropy_leaks_html"
ALERTS_KEY = f"{DOMAIN}/shield_alerts"
LEDGER_KEY = f"{DOMAIN}/negentropy_ledger"


# ----------------------------------------------------------------------------- bridge entry points
# Thin indirections (tests replace them); imported lazily so the definitions load without torch work.
def find_leaks(gcode_path, clip_path, *, time_scale=None, model=None, machine="generic_reprap") -> LeakReport:
    from atlas_core.bridge import find_leaks as _find_leaks

    return _find_leaks(gcode_path, clip_path, time_scale=time_scale, model=model, machine=machine)


def train_model(files: list[Path], out_path: Path, config=None, log=None) -> dict:
    from atlas_core.bridge.train import train_model as _train_model

    return _train_model(files, out_path, config=config, log=log)


def train_config(seed: int, tiny: bool):
    from atlas_core.bridge.train import TrainConfig

    cfg = TrainConfig.tiny() if tiny else TrainConfig()
    return dataclasses.replace(cfg, seed=seed)


def default_model_path() -> Path | None:
    try:
        from atlas_core.bridge.model import DEFAULT_MODEL_PATH
    except ImportError:
        return None
    return DEFAULT_MODEL_PATH if Path(DEFAULT_MODEL_PATH).is_file() else None


def _one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, secrets removed (``atlas_core.redact``), at most 300 characters."""
    return one_line_error(exc, 300)


def _sha(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


# ----------------------------------------------------------------------------- bridge_model
class BridgeModelConfig(dg.Config):
    gcode_folder: str = ""  # PrusaSlicer G-code to train on; "" = ATLAS_BRIDGE_GCODE or samples/gcode
    max_files: int = 64
    min_extrusions: int = 1000  # files with fewer extruding G1 lines are skipped (truncated excerpts)
    seed: int = 0
    tiny: bool = False  # TrainConfig.tiny(): about a minute of training (smoke runs, CI)
    min_top1_retrieval: float = 0.5
    max_offset_err_s: float = 0.5
    force: bool = False


_EXTRUSION_RE = re.compile(rb"^G1 [^\n;]*E", re.M)


def training_candidate(path: Path, min_extrusions: int) -> bool:
    """A PrusaSlicer file (its own header/footer, ``parse_metadata``) with at least ``min_extrusions``
    extruding G1 lines: truncated excerpts (a start block only) cannot hold a twin clip."""
    from atlas_core.gcode.metadata import parse_metadata

    try:
        if path.name.endswith(".gz"):
            import gzip

            with gzip.open(path, "rb") as fh:
                data = fh.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError):
        return False
    if parse_metadata(data[:65536], data[-65536:]).slicer != "PrusaSlicer":
        return False
    return len(_EXTRUSION_RE.findall(data)) >= min_extrusions


def training_files(folder: Path, max_files: int, min_extrusions: int = 1000) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith((".gcode", ".gcode.gz"))
                   and training_candidate(p, min_extrusions))
    return files[:max_files]


def committed_model_path(storage: AtlasStorage) -> Path | None:
    """Local path of the weights committed by ``bridge_model`` (downloaded to a cache for S3), or None."""
    manifest = storage.read_manifest(MODEL_KEY)
    if manifest is None:
        return None
    if storage.is_local:
        p = Path(storage.uri(MODEL_KEY)) / manifest["data"]
        return p if p.is_file() else None
    cache = Path(tempfile.gettempdir()) / "energy_atlas_models" / f"{_sha(manifest['content_hash'])[:16]}.pt"
    if not cache.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        from atlas_core.atomic import atomic_write_bytes

        atomic_write_bytes(cache, storage.read_bytes(MODEL_KEY))
    return cache


@dg.asset(
    group_name="atlas",
    kinds={"python", "pytorch"},
    check_specs=checks.BRIDGE_CHECK_SPECS,
    description="Thermodynamic Bridge Model retrained (seeded) on twin renders of a folder's PrusaSlicer G-code; "
                "weights committed through storage.",
)
def bridge_model(context: dg.AssetExecutionContext, config: BridgeModelConfig,
                 storage: AtlasStorage) -> dg.MaterializeResult:
    folder = Path(config.gcode_folder or os.environ.get("ATLAS_BRIDGE_GCODE") or DEFAULT_BRIDGE_GCODE)
    files = training_files(folder, config.max_files, config.min_extrusions)
    if not files:
        raise dg.Failure(f"no PrusaSlicer G-code under {folder}")
    input_hash = _sha([sha256_file(f) for f in files], config.seed, config.tiny, atlas_core.__version__)
    manifest = storage.read_manifest(MODEL_KEY)
    skipped = bool(manifest and not config.force and manifest["metadata"].get("input_hash") == input_hash)
    if skipped:
        metrics = manifest["metadata"]["metrics"]
    else:
        name = Path(default_model_path() or "tbm.pt").name
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / name
            try:
                metrics = train_model(files, out, config=train_config(config.seed, config.tiny), log=context.log.info)
            except Exception as exc:  # one item: the model; report it in one line
                raise dg.Failure(f"training failed: {_one_line(exc)}") from None
            metrics = json.loads(dumps_strict(metrics))
            data = out.read_bytes()
        storage.commit_bytes(MODEL_KEY, data, "sha256:" + hashlib.sha256(data).hexdigest(),
                             {"input_hash": input_hash, "metrics": metrics, "seed": config.seed, "tiny": config.tiny,
                              "files": [str(f) for f in files]}, name=name)
    model_path = committed_model_path(storage)
    meta = {"files": len(files), "skipped_unchanged": skipped, "seed": config.seed,
            "model_path": dg.MetadataValue.path(str(model_path) if model_path else storage.uri(MODEL_KEY)),
            **{k: metrics[k] for k in ("top1_retrieval", "offset_err_s_median", "offset_err_s_max", "n_train_pairs",
                                       "n_eval_pairs", "pipeline_recall", "pipeline_precision",
                                       "pipeline_offset_err_s_max") if isinstance(metrics.get(k), (int, float))}}
    context.log.info(f"bridge model: {json.dumps(metrics)}")
    return dg.MaterializeResult(metadata=meta, check_results=checks.bridge_checks(
        metrics, config.min_top1_retrieval, config.max_offset_err_s))


# ----------------------------------------------------------------------------- hierarchy location
def hierarchy_root(storage: AtlasStorage) -> Path:
    """Local folder of the Zarr hierarchy: in the storage folder, or a cache folder for S3."""
    if storage.is_local:
        return Path(storage.uri(DOMAIN)) / "energy_atlas.zarr"
    base = Path(os.environ.get("ATLAS_ATLAS_CACHE") or Path(tempfile.gettempdir()) / "energy_atlas_cache")
    return base / _sha(storage.root)[:16] / "energy_atlas.zarr"


def readable_hierarchy(storage: AtlasStorage) -> Path:
    """The hierarchy to read; on S3 restored from the committed zip when the local cache lacks it."""
    root = hierarchy_root(storage)
    if storage.is_local or (root / ".zgroup").is_file():
        return root
    if storage.read_manifest(ZIP_KEY) is not None:
        from atlas_core.atomic import atomic_path

        with atomic_path(root, is_dir=True) as tmp, zipfile.ZipFile(io.BytesIO(storage.read_bytes(ZIP_KEY))) as zf:
            zf.extractall(tmp)
    return root


def _publish_remote(storage: AtlasStorage, root: Path, index_hash: str) -> None:
    if storage.is_local:
        return
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(root).as_posix())
    storage.commit_bytes(ZIP_KEY, buf.getvalue(), index_hash, {"format": "zip of a zarr v2 hierarchy"},
                         name="energy_atlas.zarr.zip")


# ----------------------------------------------------------------------------- energy_atlas
class EnergyAtlasConfig(dg.Config):
    pairs: str = ""  # pairing manifest; "" = ATLAS_PAIRS or samples/pairs/pairs.yaml
    voxel_mm: float = 2.0
    max_voxels: int = 2_000_000
    force: bool = False


PAIR_COLUMNS = ["pair_id", "status", "error", "gcode", "clip", "machine", "time_scale", "offset_s", "rate",
                "alignment", "alignment_score", "planned_j", "observed_j", "n_leaks", "leak_excess_j",
                "truth_offset_s", "offset_err_s", "content_hash", "aligned", "skipped"]


def pairs_path(cfg: EnergyAtlasConfig) -> Path:
    return Path(cfg.pairs or os.environ.get("ATLAS_PAIRS") or DEFAULT_PAIRS)


MAX_TRUTH_BYTES = 1 << 20  # a TRUTH.json written by `atlas twin` is a few KB


def _truth_offset(pair: Pair) -> float | None:
    if pair.truth_path is None:
        return None
    try:
        v = json.loads(read_bounded(pair.truth_path, max_bytes=MAX_TRUTH_BYTES).decode("utf-8")).get("offset_s")
    except (OSError, ValueError, AttributeError, RecursionError):  # BoundedLoadError is a ValueError
        return None
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _pair_row(pair: Pair, report: LeakReport, content_hash: str | None, aligned: bool, skipped: bool) -> dict:
    truth = _truth_offset(pair)
    off = report.offset_s if report.ok else None
    return {"pair_id": pair.id, "status": "ok" if report.ok else "failed",
            "error": one_line_error(report.error) if report.error else report.error,
            "gcode": str(pair.gcode_path), "clip": str(pair.clip_path), "machine": pair.machine,
            "time_scale": pair.time_scale, "offset_s": off, "rate": report.rate if report.ok else None,
            "alignment": (report.meta or {}).get("alignment") if report.ok else None,
            "alignment_score": report.alignment_score if report.ok else None,
            "planned_j": report.planned_j, "observed_j": report.observed_j, "n_leaks": len(report.leaks),
            "leak_excess_j": float(sum(lk.excess_j for lk in report.leaks)), "truth_offset_s": truth,
            "offset_err_s": abs(off - truth) if off is not None and truth is not None else None,
            "content_hash": content_hash, "aligned": aligned, "skipped": skipped}


def _planned_group(root: Path, pair: Pair, gsha: str, cfg: EnergyAtlasConfig, prov: dict, log) -> None:
    from atlas_core.gcode.pipeline import GcodeOptions, analyze_file, resolve_profile

    profile = resolve_profile(pair.machine)
    h = _sha("planned", gsha, profile.model_dump(mode="json"), cfg.voxel_mm, cfg.max_voxels, atlas_core.__version__)
    if not cfg.force and store.group_hash(root, f"planned/{pair.id}") == h:
        return
    res = analyze_file(str(pair.gcode_path),
                       GcodeOptions(machine=profile, voxel_mm=cfg.voxel_mm, max_voxels=cfg.max_voxels))
    if res.grid is None:
        log.warning(f"{pair.id}: no voxel grid: {one_line_error(res.error or 'no grid')}")
        return
    store.write_group(root, "planned", pair.id, store.planned_dataset(res.grid.ds), h, prov, force=cfg.force)


def _observed_group(root: Path, pair: Pair, csha: str, cfg: EnergyAtlasConfig, prov: dict, log) -> None:
    from atlas_core.video.config import CalorimeterConfig
    from atlas_core.video.pipeline import analyze_clip

    cal = CalorimeterConfig(device="cpu", threads=1)
    h = _sha("observed", csha, {k: str(v) for k, v in dataclasses.asdict(cal).items()}, atlas_core.__version__)
    if not cfg.force and store.group_hash(root, f"observed/{pair.id}") == h:
        return
    res = analyze_clip(pair.clip_path, cal)
    if not res.ok or res.tensor is None:
        log.warning(f"{pair.id}: no activity tensor: {one_line_error(res.error or 'no tensor')}")
        return
    store.write_group(root, "observed", pair.id, store.observed_dataset(res.tensor.to_xarray()), h, prov,
                      force=cfg.force)


def process_pair(root: Path, pair: Pair, model_path: Path | None, model_sha: str | None, cfg: EnergyAtlasConfig,
                 log) -> dict:
    """Planned, observed and aligned groups of one pair (or their committed copies); never raises."""
    try:
        gsha, csha = sha256_file(pair.gcode_path), sha256_file(pair.clip_path)
    except OSError as exc:
        return _pair_row(pair, LeakReport.failure(f"read failed: {_one_line(exc)}"), None, False, False)
    content_hash = _sha("aligned", gsha, csha, model_sha, pair.time_scale, pair.machine, cfg.voxel_mm,
                        cfg.max_voxels, atlas_core.__version__)
    group = f"aligned/{pair.id}"
    if not cfg.force and store.group_hash(root, group) == content_hash:
        with store.open_group(root, group) as ds:
            rep = store.report_from_aligned(ds)
        return _pair_row(pair, rep, content_hash, True, True)
    prov = {"pair_id": pair.id, "gcode_path": str(pair.gcode_path), "gcode_sha256": gsha,
            "clip_path": str(pair.clip_path), "clip_sha256": csha, "machine": pair.machine,
            "time_scale": pair.time_scale, "truth_path": str(pair.truth_path) if pair.truth_path else None,
            "model_path": str(model_path) if model_path else None, "model_sha256": model_sha,
            "code_version": atlas_core.__version__}
    for build in (_planned_group, _observed_group):
        try:
            build(root, pair, gsha if build is _planned_group else csha, cfg, prov, log)
        except Exception as exc:  # the alignment can still be reported without this group
            log.warning(f"{pair.id}: {build.__name__[1:]} failed: {_one_line(exc)}")
    try:
        report = find_leaks(pair.gcode_path, pair.clip_path, time_scale=pair.time_scale, model=model_path,
                            machine=pair.machine)
    except Exception as exc:  # find_leaks reports bad input itself; anything else (bridge missing or broken)
        # is this pair's error, and not committed: the next run tries again with the same content hash
        return _pair_row(pair, LeakReport.failure(f"find_leaks failed: {_one_line(exc)}"), content_hash, False, False)
    planned = None
    try:
        planned = store.open_group(root, f"planned/{pair.id}") if store.group_hash(root, f"planned/{pair.id}") else None
        store.write_group(root, "aligned", pair.id, store.aligned_dataset(report, planned), content_hash, prov,
                          force=cfg.force)
        aligned = True
    except Exception as exc:
        report = LeakReport.failure(f"atlas write failed: {_one_line(exc)}")
        aligned = False
    finally:
        if planned is not None:
            planned.close()
    return _pair_row(pair, report, content_hash, aligned, False)


def _md(df: pd.DataFrame, limit: int = 50) -> dg.MetadataValue:
    """A table as Markdown metadata (tabulate is optional: a plain pipe table without it)."""
    if not len(df):
        return dg.MetadataValue.md("_(empty)_")
    head = df.head(limit)
    try:
        return dg.MetadataValue.md(head.to_markdown(index=False))
    except ImportError:
        cells = [[str(v) for v in row] for row in head.itertuples(index=False)]
        lines = ["| " + " | ".join(map(str, head.columns)) + " |", "|" + "---|" * len(head.columns),
                 *("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in cells)]
        return dg.MetadataValue.md("\n".join(lines))


@dg.asset(
    deps=["gcode_energy", "video_activity", bridge_model],
    group_name="atlas",
    kinds={"python", "zarr"},
    check_specs=checks.ATLAS_CHECK_SPECS,
    description="The Energy Atlas: per pair of the pairing manifest, planned voxel grid, observed activity tensor and "
                "their alignment (time map, per-window energy, leaks, voxels printed during each leak) in ONE Zarr "
                "hierarchy.",
)
def energy_atlas(context: dg.AssetExecutionContext, config: EnergyAtlasConfig,
                 storage: AtlasStorage) -> dg.MaterializeResult:
    path = pairs_path(config)
    try:
        pairs, manifest_errors = load_pairs(path)
    except PairsError as exc:
        raise dg.Failure(one_line_error(str(exc))) from None
    manifest_errors = [one_line_error(e) for e in manifest_errors]
    for err in manifest_errors:
        context.log.warning(err)
    root = readable_hierarchy(storage)  # on S3: the committed zip restored when this machine has no copy
    model_path = committed_model_path(storage) or default_model_path()
    model_sha = sha256_file(model_path) if model_path else None
    rows = []
    for pair in pairs:
        row = process_pair(root, pair, model_path, model_sha, config, context.log)
        if row["status"] != "ok":
            context.log.warning(f"{pair.id}: {row['error']}")
        rows.append(row)
    table = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    digest = table_digest(table)
    res = storage.commit_table(PAIRS_KEY, table, digest, {"pairs_manifest": str(path), "hierarchy": str(root),
                                                          "manifest_errors": manifest_errors})
    groups = {g: store.group_hash(root, g) for g in store.list_groups(root)}
    index_hash = _sha(groups)
    storage.commit_bytes(INDEX_KEY, dumps_strict({"hierarchy": str(root), "groups": groups}).encode(), index_hash,
                         {"groups": len(groups)}, name="index.json")
    _publish_remote(storage, root, index_hash)
    ok = table[table.status == "ok"]
    meta = {"pairs": len(table), "ok": len(ok), "failed": len(table) - len(ok),
            "skipped_unchanged": int(table.skipped.sum()),
            "manifest_errors": len(manifest_errors), "groups": len(groups),
            "hierarchy": dg.MetadataValue.path(str(root)), "pairs_table": dg.MetadataValue.path(res.uri),
            "model_path": dg.MetadataValue.path(str(model_path) if model_path else "(find_leaks default)"),
            "table": _md(table.drop(columns=["gcode", "clip", "content_hash"]))}
    return dg.MaterializeResult(metadata=meta, check_results=checks.atlas_checks(table, manifest_errors))


# ----------------------------------------------------------------------------- readers of the atlas
def atlas_reports(storage: AtlasStorage) -> tuple[Path, pd.DataFrame, list[tuple[str, LeakReport]]]:
    """(hierarchy root, pairs table, [(pair id, LeakReport)] of the committed pairs, in table order)."""
    if storage.read_manifest(PAIRS_KEY) is None:
        raise dg.Failure("energy_atlas has not been materialized (no atlas/pairs table in storage)")
    root = readable_hierarchy(storage)
    table = storage.read_table(PAIRS_KEY)
    items = []
    for r in table.itertuples():
        if bool(r.aligned) and store.group_hash(root, f"aligned/{r.pair_id}"):
            with store.open_group(root, f"aligned/{r.pair_id}") as ds:
                items.append((r.pair_id, store.report_from_aligned(ds)))
        else:
            items.append((r.pair_id, LeakReport.failure(r.error if isinstance(r.error, str) else "not aligned")))
    return root, table, items


LEAK_COLUMNS = ["pair_id", "leak", "kind", "start_s", "end_s", "planned_at_s", "planned_start_s", "planned_end_s",
                "excess_j", "score", "n_voxels"]


@dg.asset(
    deps=[energy_atlas],
    group_name="atlas",
    kinds={"python"},
    check_specs=checks.LEAKS_CHECK_SPECS,
    description="Every entropy leak of every aligned pair (clip and planned intervals, excess J, voxels printed "
                "meanwhile) as a table, plus a Markdown and an HTML report with power plots.",
)
def entropy_leaks(context: dg.AssetExecutionContext, storage: AtlasStorage) -> dg.MaterializeResult:
    root, _, items = atlas_reports(storage)
    rows = []
    for pid, rep in items:
        if not rep.ok:
            continue
        with store.open_group(root, f"aligned/{pid}") as ds:
            ps, pe = ds["leak_planned_start_s"].values, ds["leak_planned_end_s"].values
            per_leak = pd.Series(ds["leak_voxel_leak"].values).value_counts()
        for i, lk in enumerate(rep.leaks):
            rows.append({"pair_id": pid, "leak": i, "kind": lk.kind, "start_s": float(lk.start_s),
                         "end_s": float(lk.end_s),
                         "planned_at_s": float(lk.planned_at_s), "planned_start_s": float(ps[i]),
                         "planned_end_s": float(pe[i]), "excess_j": float(lk.excess_j), "score": float(lk.score),
                         "n_voxels": int(per_leak.get(i, 0))})
    table = pd.DataFrame(rows, columns=LEAK_COLUMNS)
    res = storage.commit_table(LEAKS_KEY, table, table_digest(table), {"pairs": len(items)})
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_report(Path(tmp) / "report", items)
        md, html_text = paths["md"].read_text(encoding="utf-8"), paths["html"].read_bytes()
    md_res = storage.commit_bytes(REPORT_MD_KEY, md.encode("utf-8"), name="report.md")
    html_res = storage.commit_bytes(REPORT_HTML_KEY, html_text, name="report.html")
    meta: dict[str, Any] = {"pairs": len(items), "leaks": len(table),
                            "excess_kj": float(table.excess_j.sum()) / 1e3 if len(table) else 0.0,
                            "table": _md(table), "leaks_table": dg.MetadataValue.path(res.uri),
                            "report_md": dg.MetadataValue.path(md_res.uri),
                            "report_html": dg.MetadataValue.path(html_res.uri)}
    for pid, rep in items:
        if rep.ok and (png := power_plot_png(pid, rep)) is not None:
            import base64

            meta["power_plot"] = dg.MetadataValue.md(
                f"![{pid} power](data:image/png;base64,{base64.b64encode(png).decode()})")
            break
    return dg.MaterializeResult(metadata=meta, check_results=checks.leaks_checks(table))


class ShieldConfig(dg.Config):
    k: float = shield.DEFAULT_K  # robust z threshold for erratic observed motion
    merge_gap_s: float = 1.0


ALERT_COLUMNS = ["pair_id", "kind", "source", "start_s", "end_s", "value", "limit", "units", "error"]


@dg.asset(
    deps=[energy_atlas],
    group_name="atlas",
    kinds={"python"},
    description="AI-Shield alerts per pair: planned power above the machine's PSU rating, observed erratic motion "
                "(jerk, residual motion) beyond its robust baseline.",
)
def shield_alerts(context: dg.AssetExecutionContext, config: ShieldConfig,
                  storage: AtlasStorage) -> dg.MaterializeResult:
    root, table, _ = atlas_reports(storage)
    rows = []
    for r in table.itertuples():
        try:
            alerts = shield.gcode_power_alerts(r.gcode, r.machine)
        except Exception as exc:
            rows.append({"pair_id": r.pair_id, "kind": "power_spike", "source": "planned", "error": _one_line(exc)})
            alerts = []
        if store.group_hash(root, f"observed/{r.pair_id}"):
            with store.open_group(root, f"observed/{r.pair_id}") as ds:
                tl = {"time_s": ds["time"].values, **{k: ds[k].values for k in shield.SIGNALS if k in ds}}
            alerts += shield.erratic_motion_alerts(tl, k=config.k)
        rows += [{"pair_id": r.pair_id, **a.as_dict(), "error": None} for a in alerts]
    out = pd.DataFrame(rows, columns=ALERT_COLUMNS)
    res = storage.commit_table(ALERTS_KEY, out, table_digest(out), {"pairs": len(table), "k": config.k})
    good = out[out.error.isna()]
    meta = {"pairs": len(table), "alerts": len(good), "errors": int(out.error.notna().sum()),
            **{f"alerts_{k}": int((good.kind == k).sum()) for k in ("power_spike", "erratic_jerk", "erratic_residual")},
            "table": _md(out), "alerts_table": dg.MetadataValue.path(res.uri)}
    return dg.MaterializeResult(metadata=meta)


class LedgerConfig(dg.Config):
    confidence_min: float = ledger_mod.CONFIDENCE_MIN


@dg.asset(
    deps=[energy_atlas],
    group_name="atlas",
    kinds={"python"},
    description="Negentropy ledger: planned vs observed J per pair, planned − observed credit, alignment confidence; "
                "savings counted only where the alignment is trusted.",
)
def negentropy_ledger(context: dg.AssetExecutionContext, config: LedgerConfig,
                      storage: AtlasStorage) -> dg.MaterializeResult:
    _, _, items = atlas_reports(storage)
    entries = ledger_mod.ledger(items, threshold=config.confidence_min)
    table = pd.DataFrame([e.as_dict() for e in entries],
                         columns=[f.name for f in dataclasses.fields(ledger_mod.LedgerEntry)])
    totals = ledger_mod.ledger_totals(entries, threshold=config.confidence_min)
    res = storage.commit_table(LEDGER_KEY, table, table_digest(table), {"totals": totals})
    meta = {**{k: (float(v) if isinstance(v, float) else v) for k, v in totals.items()},
            "table": _md(table), "ledger_table": dg.MetadataValue.path(res.uri)}
    return dg.MaterializeResult(metadata=meta)
