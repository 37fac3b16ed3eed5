"""A rich progress display for Keras' fit loop (one bar for epochs, one for the steps of the current epoch)."""

from __future__ import annotations

import keras
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class TrainingProgress(keras.callbacks.Callback):
    def __init__(self, epochs: int, steps_per_epoch: int, console: Console | None = None):
        super().__init__()
        self.console = console or Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=self.console, transient=True)
        self.epochs, self.steps = epochs, steps_per_epoch

    def on_train_begin(self, logs=None):
        self.progress.start()
        self.epoch_task = self.progress.add_task("epochs", total=self.epochs)
        self.step_task = self.progress.add_task("steps", total=self.steps)

    def on_epoch_begin(self, epoch, logs=None):
        self.progress.update(self.epoch_task, completed=epoch)
        self.progress.reset(self.step_task, total=self.steps, description=f"epoch {epoch + 1}")

    def on_train_batch_end(self, batch, logs=None):
        self.progress.update(self.step_task, completed=batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        self.progress.update(self.epoch_task, completed=epoch + 1)
        logs = logs or {}
        shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "learning_rate")
        self.console.print(f"epoch {epoch + 1}/{self.epochs}  {shown}")

    def on_train_end(self, logs=None):
        self.progress.stop()
