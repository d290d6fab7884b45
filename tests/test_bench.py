"""`pipeline bench`: one fresh process per configuration, arguments checked before any starts."""
import pytest

from cli_helpers import assert_one_line_error, run_cli
from pipeline.bench import run_benchmarks


def test_bench_rows_report_time_memory_and_traffic_that_scales_with_the_frame():
    rows = run_benchmarks("single_layer", "12x16,24x32", iterations=2, compilers=("plain",))
    assert [(r["method"], r["frame"], r["compiler"]) for r in rows] == [
        ("single_layer", "12x16x3", "tf.function"), ("single_layer", "24x32x3", "tf.function")]
    for row in rows:
        assert row["seconds_per_iteration"] > 0 and row["cpu_seconds_per_iteration"] > 0
        assert 0.1 < row["peak_rss_gb"] < 8  # a process that imported TensorFlow, measured on its own
    # per-pixel messages dominate the traffic: 4x the pixels is about 4x the bytes
    assert 3.5 < rows[1]["mb_per_iteration"] / rows[0]["mb_per_iteration"] < 4.1


@pytest.mark.parametrize("args,message", [
    (["--model", "nosuchmodel"], "unknown denoise config"),
    (["--model", "median3"], "not a GBP method"),
    (["--iterations", "0"], "--iterations"),
    (["--sizes", "258"], "HEIGHTxWIDTH"),
    (["--sizes", "2x454"], "at least 3x3"),
    (["--compilers", "gcc"], "--compilers"),
])
def test_bad_bench_arguments_are_one_line_errors(args, message, capsys):
    assert_one_line_error(*run_cli(["bench", *args], capsys), message)
