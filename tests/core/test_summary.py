"""study_summary validates every metrics.json it reads against the metrics schema."""

import json

import pandas as pd
import pytest

from medrepro.errors import InputError
from medrepro.report.summary import read_metrics, write_study_summary

DESC = {"primary": "macro_f1", "higher_is_better": True, "columns": ["macro_f1"], "title": "t"}


def _metrics(tmp_path, **over):
    units = tmp_path / "units.csv"
    pd.DataFrame({"unit_id": ["a", "b"], "cluster": ["a", "b"], "y_true": [0, 1], "y_pred": [0, 1]}).to_csv(
        units, index=False)
    m = {"schema": "medrepro-metrics-v1", "study": "toy", "run": "r", "seed": 0, "split": "s", "primary": "macro_f1",
         "metrics": {"macro_f1": {"estimate": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": 2}}, "units": units.name,
         "selection": {"policy": "val", "test_guided": False, "step": 1},
         "bootstrap": {"iterations": 10, "seed": 0, "level": 0.95, "cluster": "unit"}, "data": {"kind": "synthetic"}}
    m.update(over)
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(m))
    return path


def test_a_valid_file_is_summarised(tmp_path):
    df = write_study_summary([_metrics(tmp_path)], DESC, tmp_path / "s.csv", tmp_path / "s.png")
    assert df.loc[0, "macro_f1"] == 1.0 and (tmp_path / "s.png").stat().st_size > 0


@pytest.mark.parametrize("over,field", [
    ({"selection": {"policy": "best", "test_guided": False}}, "selection.policy"),
    ({"metrics": {"macro_f1": {"estimate": "high", "ci_low": 0, "ci_high": 1, "n": 2}}}, "metrics.macro_f1.estimate"),
    ({"run": None}, "run"),
    ({"primary": "accuracy"}, "primary"),
])
def test_a_bad_file_names_the_file_and_the_field(tmp_path, over, field):
    path = _metrics(tmp_path, **over)
    with pytest.raises(InputError) as err:
        write_study_summary([path], DESC, tmp_path / "s.csv", tmp_path / "s.png")
    assert str(path) in str(err.value) and f": {field}:" in str(err.value)
    assert not (tmp_path / "s.csv").exists()


def test_a_missing_column_and_bad_json_are_refused(tmp_path):
    with pytest.raises(InputError, match="accuracy"):
        write_study_summary([_metrics(tmp_path)], {**DESC, "columns": ["accuracy"]}, tmp_path / "s.csv",
                            tmp_path / "s.png")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(InputError, match="not JSON"):
        read_metrics(bad)
