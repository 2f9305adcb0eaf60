"""What a training run writes besides checkpoints (only the main process writes): ``train_log.csv`` (epoch,
step, loss, lr), ``val_log.csv`` (epoch, step, metric), TensorBoard scalars when installed, a progress bar per
epoch and the printed validation tables and final summary."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

TRAIN_LOG = "train_log.csv"
VAL_LOG = "val_log.csv"


def truncate_csv(path: Path, max_step: int) -> None:
    """Drop the rows of a log after ``max_step`` (a killed run may have logged past the checkpoint we resume)."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    head, body = rows[0], rows[1:]
    col = head.index("step")
    body = [r for r in body if int(r[col]) <= max_step]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([head] + body)


class CsvLog:
    """Rows appended to a CSV file with a fixed header (written when the file is new); no-op when disabled."""

    def __init__(self, path: Path, columns: list[str], enabled: bool):
        self.path, self.columns, self.enabled = path, columns, enabled
        if enabled and not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", newline="") as f:
                csv.writer(f).writerow(columns)

    def write(self, row: dict) -> None:
        if self.enabled:
            with open(self.path, "a", newline="") as f:
                csv.writer(f).writerow([row.get(c, "") for c in self.columns])


def _tensorboard(out: Path, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tensorboard"))


class RunLogs:
    """The logs of one run in ``out`` (``enabled``: this is the main process).

    ``resumed_at``: the step of the checkpoint a resumed run starts from (rows after it are dropped); None for
    a fresh run, whose old logs are deleted.
    """

    def __init__(self, out: Path, enabled: bool, resumed_at: int | None):
        if enabled:
            for name in (TRAIN_LOG, VAL_LOG):
                if resumed_at is None:
                    (out / name).unlink(missing_ok=True)
                else:
                    truncate_csv(out / name, resumed_at)
        self.enabled = enabled
        self.train = CsvLog(out / TRAIN_LOG, ["epoch", "step", "loss", "lr"], enabled)
        self.val = CsvLog(out / VAL_LOG, ["epoch", "step", "metric"], enabled)
        self.tb = _tensorboard(out, enabled)

    def step(self, epoch: int, step: int, loss: float, lr: float) -> None:
        """One logged training step (``epoch`` 1-based, ``step`` counted over the run)."""
        self.train.write({"epoch": epoch, "step": step, "loss": f"{loss:.9g}", "lr": f"{lr:.6g}"})
        if self.tb is not None:
            self.tb.add_scalar("train/loss", loss, step)
            self.tb.add_scalar("train/lr", lr, step)

    def validation(self, epoch: int, step: int, metric: float, table: str) -> None:
        self.val.write({"epoch": epoch, "step": step, "metric": f"{metric:.6f}"})
        if self.enabled:
            print(f"epoch {epoch}: validation\n{table}", flush=True)
        if self.tb is not None:
            self.tb.add_scalar("val/metric", metric, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def progress_bar(enabled: bool, total: int, desc: str) -> Any:
    """A tqdm bar of ``total`` steps, or None."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False)


__all__ = ["TRAIN_LOG", "VAL_LOG", "CsvLog", "RunLogs", "progress_bar", "truncate_csv"]
