import csv
import io

from django.core.management import call_command

from .conftest import news


def test_simulate_runs_campaigns_and_draws_curves(tmp_path):
    rows = news(240)
    for name, part in (("pool.csv", rows[:180]), ("test.csv", rows[180:])):
        with (tmp_path / name).open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["label", "text"])
            writer.writerows((row["topic"], row["text"]) for row in part)
    out = io.StringIO()
    plot = tmp_path / "curves.png"

    from contextlib import redirect_stdout

    with redirect_stdout(out):
        call_command(
            "simulate", "--pool", str(tmp_path / "pool.csv"), "--test", str(tmp_path / "test.csv"),
            "--budget", "60", "--batch", "20", "--start", "20", "--seeds", "0", "--strategies", "margin,random",
            "--cache", str(tmp_path / "cache"), "--plot", str(plot), "--round-items", "2000",
        )  # fmt: skip

    text = out.getvalue()
    assert "baseline: raw embeddings + LR, margin" in text and "Quorum: margin" in text
    assert "20:" in text and "60:" in text  # accuracy after every batch
    assert "One round on 2,000 cached items" in text
    assert plot.exists() and plot.stat().st_size > 10_000
