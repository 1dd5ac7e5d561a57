"""Prediction CSV layouts: the full report, Kaggle submissions with and without a sample submission."""
import pytest

from visionfit.errors import ConfigError, DataError
from visionfit.infer.submission import Ids, full_table, kaggle_table, read_sample

NAMES = ["cat", "dog", "fox"]


def rows_for(ids: list[str]) -> list[dict]:
    """One prediction row per id: label and probabilities that differ per row, so a shuffle shows."""
    rows = []
    for i, name in enumerate(ids):
        probs = {"cat": 0.1 * (i % 3), "dog": 0.5, "fox": 0.5 - 0.1 * (i % 3)}
        rows.append({"image": name, "label": max(probs, key=probs.get), "confidence": 0.5, "probs": probs, "error": ""})
    return rows


def ids_of(names: list[str], column: str = "id") -> Ids:
    return Ids(column, names, [f"test.csv row {i + 2}" for i in range(len(names))])


def write(path, text: str):
    path.write_text(text)
    return path


def test_kaggle_keeps_the_inputs_id_column_name_and_order():
    names = ["b7", "a1", "c3"]
    table = kaggle_table(rows_for(names), ids_of(names, "ImageId"), NAMES, probs=False)
    assert table.header == ["ImageId", "label"]
    assert table.cells == [[name, row["label"]] for name, row in zip(names, rows_for(names))]


def test_kaggle_probs_are_one_column_per_class_in_the_models_order():
    names = ["b7", "a1"]
    table = kaggle_table(rows_for(names), ids_of(names), NAMES, probs=True)
    assert table.header == ["id", "cat", "dog", "fox"]
    assert table.cells[1] == ["a1", "0.100000", "0.500000", "0.400000"]


def test_a_sample_submission_gives_its_header_its_id_cells_and_its_order(tmp_path):
    names = ["a1", "b7", "c3"]
    sample = read_sample(write(tmp_path / "s.csv", "Label,id\n0,c3\n0,a1\n0,b7\n"), "id", NAMES, probs=False)
    table = kaggle_table(rows_for(names), ids_of(names), NAMES, probs=False, sample=sample)
    rows = {row["image"]: row for row in rows_for(names)}
    assert table.header == ["Label", "id"]  # its header as written, id column second
    assert table.cells == [[rows[i]["label"], i] for i in ("c3", "a1", "b7")]


def test_sample_probability_columns_keep_the_samples_column_order(tmp_path):
    names = ["a1", "b7"]
    sample = read_sample(write(tmp_path / "s.csv", "id,fox,cat,dog\nb7,0,0,0\na1,0,0,0\n"), "id", NAMES, probs=True)
    table = kaggle_table(rows_for(names), ids_of(names), NAMES, probs=True, sample=sample)
    assert table.header == ["id", "fox", "cat", "dog"]
    assert table.cells == [["b7", "0.400000", "0.100000", "0.500000"], ["a1", "0.500000", "0.000000", "0.500000"]]


def test_sample_ids_match_file_names_without_their_image_extension(tmp_path):
    names = ["3.png", "10.png"]
    sample = read_sample(write(tmp_path / "s.csv", "id,label\n10,x\n3,x\n"), "image", NAMES, probs=False)
    table = kaggle_table(rows_for(names), ids_of(names, "image"), NAMES, probs=False, sample=sample)
    assert [line[0] for line in table.cells] == ["10", "3"]


@pytest.mark.parametrize("sample_text, inputs, message", [
    ("id,label\na1,x\nzz,x\n", ["a1"], "s.csv row 3: id 'zz' is not among the inputs"),
    ("id,label\na1,x\n", ["a1", "b7"], "test.csv row 3: 'b7' is not an id of"),
    ("id,label\na1,x\na1,x\n", ["a1"], "s.csv row 3: id 'a1' repeats row 2"),
    ("id,label\n,x\n", ["a1"], "s.csv row 2: the id cell is empty"),
])
def test_missing_extra_and_repeated_ids_are_one_line_naming_the_file_and_row(tmp_path, sample_text, inputs, message):
    with pytest.raises(DataError, match=message):
        sample = read_sample(write(tmp_path / "s.csv", sample_text), "id", NAMES, probs=False)
        kaggle_table(rows_for(inputs), ids_of(inputs), NAMES, probs=False, sample=sample)


@pytest.mark.parametrize("sample_text, probs, message", [
    ("id,label\na1,x\n", True, "--probs with --sample-submission .*not the model's classes"),
    ("id,cat,dog,fox\na1,0,0,0\n", False, "wants probabilities; add --probs"),
    ("id,label,score\na1,x,1\n", False, "one label column, not 2"),
])
def test_a_sample_that_does_not_fit_the_request_is_refused(tmp_path, sample_text, probs, message):
    with pytest.raises(ConfigError, match=message):
        read_sample(write(tmp_path / "s.csv", sample_text), "id", NAMES, probs=probs)


def test_full_table_appends_probabilities_before_the_error_column():
    table = full_table(rows_for(["a1"]), topk=0, class_names=NAMES, probs=True)
    assert table.header == ["image", "label", "confidence", "cat", "dog", "fox", "error"]
    assert table.cells[0] == ["a1", "dog", "0.500000", "0.000000", "0.500000", "0.500000", ""]


def test_a_class_named_like_a_column_is_refused_with_probs():
    with pytest.raises(ConfigError, match="class 'label'"):
        full_table(rows_for(["a1"]), topk=0, class_names=["label", "dog"], probs=True)
